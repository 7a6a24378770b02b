/**
 * Per process, ONE watcher per live artifact fans changes out to all its viewers (kv.watch plus
 * a slow poll for writes by other processes), and a small shared cache of recent batches means
 * 10,000 viewers of one artifact cost one KV read per batch, not 10,000. Viewers pull at their
 * own pace; the hub never pushes into a viewer, so a stalled one holds nothing but its position.
 */
import type { ArtifactRecord } from "./artifacts.ts";
import { keys } from "./keys.ts";
import { watchKeys } from "./kv_watch.ts";
import { formatEvent } from "./sse.ts";

const BATCH_CACHE = 256;
/** Most bytes a catching-up viewer is sent in one pull. */
const MAX_CHUNK_BYTES = 32 * 1024;

class LiveArtifact {
  record: ArtifactRecord | null = null;
  viewers = 0;
  #next: Promise<void> | null = null;
  #wake: () => void = () => {};
  #batches = new Map<string, Promise<Uint8Array | null>>();
  /** The same batches once read, for the synchronous fast path every caught-up viewer takes. */
  #framed = new Map<string, Uint8Array>();
  #abort = new AbortController();
  #first: Promise<void>;

  constructor(private readonly kv: Deno.Kv, readonly id: string, pollMs: number) {
    let ready = () => {};
    this.#first = new Promise((r) => ready = r);
    this.#watch(pollMs, ready);
  }

  async #watch(pollMs: number, ready: () => void): Promise<void> {
    try {
      for await (
        const [entry] of watchKeys<ArtifactRecord>(
          this.kv,
          [keys.artifact(this.id)],
          this.#abort.signal,
          pollMs,
        )
      ) {
        this.record = entry.value;
        ready();
        this.#notify();
      }
    } catch {
      // KV closed: wake everyone so their streams end
    } finally {
      ready();
      this.#notify();
    }
  }

  #notify(): void {
    this.#next = null;
    this.#wake();
  }

  /** Resolves once the first read of the record is in. */
  ready(): Promise<void> {
    return this.#first;
  }

  /** Resolves at the next change of the record: one promise shared by every waiting viewer. */
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
   * The framed batches `from`..`to` (up to `maxBytes`, always at least one), so a viewer that fell
   * behind catches up in one pull. The buffers are the shared ones: nothing is copied per viewer.
   * Batches already read are taken without waiting — the path every caught-up viewer takes.
   */
  async deltaEvents(
    gen: number,
    from: number,
    to: number,
  ): Promise<{ parts: Uint8Array[]; last: number } | null> {
    const ready = this.#gather(from, to, (seq) => this.#framed.get(`${gen}:${seq}`));
    if (ready) return ready;
    const first = await this.deltaEvent(gen, from);
    if (first === null) return null;
    return this.#gather(from, to, (seq) => (seq === from ? first : this.#framed.get(`${gen}:${seq}`)));
  }

  #gather(from: number, to: number, get: (seq: number) => Uint8Array | undefined) {
    const parts: Uint8Array[] = [];
    let size = 0;
    let last = from - 1;
    for (let seq = from; seq <= to && seq < from + 64; seq++) {
      const event = get(seq);
      if (event === undefined || (parts.length > 0 && size + event.byteLength > MAX_CHUNK_BYTES)) break;
      parts.push(event);
      size += event.byteLength;
      last = seq;
    }
    return parts.length ? { parts, last } : null;
  }

  stop(): void {
    this.#abort.abort();
    this.#notify();
  }
}

export class ArtifactHub {
  #live = new Map<string, LiveArtifact>();

  constructor(private readonly kv: Deno.Kv, private readonly pollMs = 250) {}

  /** Joins the live view of an artifact; call `leave` exactly once when done. */
  join(id: string): { live: LiveArtifact; leave: () => void } {
    let live = this.#live.get(id);
    if (!live) {
      live = new LiveArtifact(this.kv, id, this.pollMs);
      this.#live.set(id, live);
    }
    live.viewers++;
    let left = false;
    return {
      live,
      leave: () => {
        if (left) return;
        left = true;
        live.viewers--;
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
