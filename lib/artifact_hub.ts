/**
 * Per process, ONE watcher per live artifact fans changes out to all its viewers (kv.watch plus
 * a slow poll for writes by other processes), and a small shared cache of recent batches means
 * 10,000 viewers of one artifact cost one KV read per batch, not 10,000. Viewers pull at their
 * own pace; the hub never pushes into a viewer, so a stalled one holds nothing but its position.
 *
 * Deliveries are paced by how many viewers the process holds: each write to a socket costs the
 * process ~15–40 µs however small it is, so 10,000 viewers woken for every ~100 ms batch would
 * need more than a core. A change is published to viewers at most once per
 * `viewers / DELIVERIES_PER_SECOND` (0 ms for a few hundred viewers, 200 ms for 10,000); whatever
 * was written meanwhile goes out together, as one write per viewer.
 */
import type { ArtifactRecord } from "./artifacts.ts";
import { concatBytes } from "./bytes.ts";
import { keys } from "./keys.ts";
import { watchKeys } from "./kv_watch.ts";
import { formatEvent, type SseEvent } from "./sse.ts";

const BATCH_CACHE = 256;
/** Most bytes a catching-up viewer is sent in one pull. */
const MAX_CHUNK_BYTES = 32 * 1024;
/** Most batches sent in one pull. */
const MAX_CHUNK_BATCHES = 64;
/**
 * Joined runs of batches kept: viewers at a few positions at once (caught up, arriving now and
 * catching up from the start, resuming) each find theirs instead of evicting the others'.
 */
const JOINED_RUNS = 8;
/** Socket writes per second a process aims to stay under across all its viewers. */
export const DELIVERIES_PER_SECOND = 50_000;
/**
 * How often a live artifact's record is read for writes by other processes (kv.watch sees this
 * process's own at once): the slow poll DESIGN.md allows (≥ 250 ms), one KV read per live artifact
 * however many viewers it has.
 */
const POLL_MS = 250;
/** The longest a change waits to be published, however many viewers there are. */
const MAX_PACE_MS = 400;

/** A run of framed batches as one buffer, and the last batch in it. */
interface Deltas {
  bytes: Uint8Array;
  last: number;
}

class LiveArtifact {
  /** The record as published to viewers (see the pacing above); the watcher may know a newer one. */
  record: ArtifactRecord | null = null;
  viewers = 0;
  #latest: ArtifactRecord | null = null;
  #lastPublished = 0;
  /** Publishes started, and the latest one whose record reached viewers (see #wakeWith). */
  #publishes = 0;
  #woken = 0;
  #publishTimer: ReturnType<typeof setTimeout> | undefined;
  #next: Promise<void> | null = null;
  #wake: () => void = () => {};
  #batches = new Map<string, Promise<Uint8Array | null>>();
  /** The same batches once read, for the synchronous fast path every caught-up viewer takes. */
  #framed = new Map<string, Uint8Array>();
  /** The latest runs of batches joined into one buffer, each shared by every viewer at its position. */
  #joined: (Deltas & { gen: number; from: number; to: number })[] = [];
  #final: { record: ArtifactRecord; bytes: Promise<Uint8Array> } | null = null;
  #abort = new AbortController();
  #first: Promise<void>;

  constructor(
    private readonly kv: Deno.Kv,
    readonly id: string,
    private readonly paceMs: () => number,
  ) {
    let ready = () => {};
    this.#first = new Promise((r) => ready = r);
    this.#watch(ready);
  }

  async #watch(ready: () => void): Promise<void> {
    let first = true;
    try {
      for await (
        const [entry] of watchKeys<ArtifactRecord>(
          this.kv,
          [keys.artifact(this.id)],
          this.#abort.signal,
          POLL_MS,
        )
      ) {
        this.#latest = entry.value;
        if (first) this.#publish();
        else this.#schedulePublish();
        first = false;
        ready();
      }
    } catch {
      // KV closed: wake everyone so their streams end
    } finally {
      ready();
      this.#publish();
    }
  }

  #schedulePublish(): void {
    if (this.#publishTimer !== undefined) return;
    const wait = this.#lastPublished + this.paceMs() - Date.now();
    if (wait <= 0) return this.#publish();
    this.#publishTimer = setTimeout(() => this.#publish(), wait);
  }

  #publish(): void {
    clearTimeout(this.#publishTimer);
    this.#publishTimer = undefined;
    this.#lastPublished = Date.now();
    const record = this.#latest;
    const order = ++this.#publishes;
    const reads = this.#readNewBatches(record);
    if (reads) reads.then(() => this.#wakeWith(record, order));
    else this.#wakeWith(record, order);
  }

  /**
   * Reads the batches `record` has past the published record's, so that viewers are woken with all
   * of them ready and each takes the whole run in one write. Woken before the reads, each viewer
   * would be sent the first new batch alone and pull again for the next: a write, and a place in
   * the queue behind every other viewer, per batch. Null when there is nothing new to read.
   */
  #readNewBatches(record: ArtifactRecord | null): Promise<unknown> | null {
    const published = this.record;
    if (!record || !published || record.gen !== published.gen || record.textSeq <= published.textSeq) {
      return null;
    }
    const reads = [];
    const from = Math.max(published.textSeq + 1, record.textSeq - MAX_CHUNK_BATCHES + 1);
    for (let seq = from; seq <= record.textSeq; seq++) reads.push(this.deltaEvent(record.gen, seq));
    return Promise.allSettled(reads);
  }

  /** Publishes `record` to viewers, unless a later publish got there first. */
  #wakeWith(record: ArtifactRecord | null, order: number): void {
    if (order < this.#woken) return;
    this.#woken = order;
    this.record = record;
    this.#next = null;
    this.#wake();
  }

  /** Resolves once the first read of the record is in. */
  ready(): Promise<void> {
    return this.#first;
  }

  /** Resolves at the next published change: one promise shared by every waiting viewer. */
  changed(): Promise<void> {
    if (this.#abort.signal.aborted) return Promise.resolve();
    return this.#next ??= new Promise((resolve) => this.#wake = resolve);
  }

  /**
   * One batch as a framed `delta` event, read from KV and encoded once however many viewers ask:
   * every viewer is sent the same bytes.
   */
  deltaEvent(gen: number, seq: number): Promise<Uint8Array | null> {
    const key = `${gen}:${seq}`;
    let hit = this.#batches.get(key);
    if (!hit) {
      hit = this.kv.get<string>(keys.artifactText(this.id, gen, seq)).then((e) => {
        if (e.value === null) {
          this.#batches.delete(key);
          return null;
        }
        const framed = formatEvent({ id: seq, event: "delta", data: { text: e.value } });
        if (this.#batches.has(key)) this.#framed.set(key, framed);
        return framed;
      }, (e) => {
        this.#batches.delete(key); // a failed read is not kept: the next viewer asking reads again
        throw e;
      });
      this.#batches.set(key, hit);
      if (this.#batches.size > BATCH_CACHE) {
        const oldest = this.#batches.keys().next().value!;
        this.#batches.delete(oldest);
        this.#framed.delete(oldest);
      }
    }
    return hit;
  }

  /**
   * The framed batches `from`..`to` (up to 32 KB, always at least one) as one buffer, so a viewer
   * that fell behind catches up in one write. Viewers at the same position share the buffer:
   * nothing is copied per viewer.
   */
  async deltaEvents(gen: number, from: number, to: number): Promise<Deltas | null> {
    const ready = this.readyDeltaEvents(gen, from, to);
    if (ready) return ready;
    const first = await this.deltaEvent(gen, from);
    if (first === null) return null;
    return this.#joinRun(gen, from, to, (seq) => (seq === from ? first : this.#framed.get(`${gen}:${seq}`)))!;
  }

  /**
   * `deltaEvents` without waiting, when every batch it needs was read already (the path every
   * caught-up viewer takes); undefined otherwise.
   */
  readyDeltaEvents(gen: number, from: number, to: number): Deltas | undefined {
    for (const joined of this.#joined) {
      if (joined.gen === gen && joined.from === from && joined.to === to) return joined;
    }
    return this.#joinRun(gen, from, to, (seq) => this.#framed.get(`${gen}:${seq}`));
  }

  #joinRun(gen: number, from: number, to: number, get: (seq: number) => Uint8Array | undefined) {
    const parts = this.#gather(from, to, get);
    if (!parts) return undefined;
    const joined = { gen, from, to, bytes: concatBytes(parts), last: from + parts.length - 1 };
    this.#joined.unshift(joined);
    if (this.#joined.length > JOINED_RUNS) this.#joined.pop();
    return joined;
  }

  #gather(from: number, to: number, get: (seq: number) => Uint8Array | undefined): Uint8Array[] | null {
    const parts: Uint8Array[] = [];
    let size = 0;
    for (let seq = from; seq <= to && seq < from + MAX_CHUNK_BATCHES; seq++) {
      const event = get(seq);
      if (event === undefined || (parts.length > 0 && size + event.byteLength > MAX_CHUNK_BYTES)) break;
      parts.push(event);
      size += event.byteLength;
    }
    return parts.length ? parts : null;
  }

  /**
   * The event that ends every viewer's stream at `record` (done or error), framed once for all of
   * them (10,000 viewers finishing together would otherwise each serialise the same record), and
   * handed out one macrotask after it was first asked for. Handed out at once, it went into the same
   * turn of the event loop as the final text, so every socket took its last text, the end and the
   * close together, and the last of 10,000 viewers got the final text ~3× later than any other batch
   * (p99 ~670 ms, not ~220). Deferred, the final text goes out to everyone first, like any publish.
   */
  finalEvent(record: ArtifactRecord, make: () => SseEvent): Promise<Uint8Array> {
    if (this.#final?.record !== record) {
      const bytes = formatEvent(make());
      this.#final = { record, bytes: new Promise((resolve) => setTimeout(() => resolve(bytes), 0)) };
    }
    return this.#final.bytes;
  }

  stop(): void {
    this.#abort.abort();
    this.#publish();
  }
}

export class ArtifactHub {
  #live = new Map<string, LiveArtifact>();
  #viewers = 0;
  readonly #paceMs = () => Math.min(MAX_PACE_MS, (this.#viewers * 1000) / DELIVERIES_PER_SECOND);

  constructor(private readonly kv: Deno.Kv) {}

  /** Joins the live view of an artifact; call `leave` exactly once when done. */
  join(id: string): { live: LiveArtifact; leave: () => void } {
    let live = this.#live.get(id);
    if (!live) {
      live = new LiveArtifact(this.kv, id, this.#paceMs);
      this.#live.set(id, live);
    }
    live.viewers++;
    this.#viewers++;
    let left = false;
    return {
      live,
      leave: () => {
        if (left) return;
        left = true;
        live.viewers--;
        this.#viewers--;
        if (live.viewers === 0) {
          live.stop();
          this.#live.delete(id);
        }
      },
    };
  }

  /** Number of artifacts watched by this process (for metrics). */
  get watched(): number {
    return this.#live.size;
  }
}

export type { LiveArtifact };
