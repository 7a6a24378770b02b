/**
 * Per process, ONE watcher per live artifact fans changes out to all its viewers (kv.watch plus
 * a slow poll for writes by other processes), and a small shared cache of recent batches means
 * 10,000 viewers of one artifact cost one KV read per batch, not 10,000. Viewers pull at their
 * own pace; the hub never pushes into a viewer, so a stalled one holds nothing but its position.
 */
import type { ArtifactRecord } from "./artifacts.ts";
import { keys } from "./keys.ts";
import { watchKeys } from "./kv_watch.ts";

const BATCH_CACHE = 256;

class LiveArtifact {
  record: ArtifactRecord | null = null;
  viewers = 0;
  #waiters = new Set<() => void>();
  #batches = new Map<string, Promise<string | null>>();
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
        for (const wake of this.#waiters) wake();
        this.#waiters.clear();
      }
    } catch {
      // KV closed: wake everyone so their streams end
    } finally {
      ready();
      for (const wake of this.#waiters) wake();
      this.#waiters.clear();
    }
  }

  /** Resolves once the first read of the record is in. */
  ready(): Promise<void> {
    return this.#first;
  }

  /** Resolves at the next change of the record, or when `signal` aborts. */
  changed(signal: AbortSignal): Promise<void> {
    if (this.#abort.signal.aborted || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        signal.removeEventListener("abort", wake);
        this.#waiters.delete(wake);
        resolve();
      };
      this.#waiters.add(wake);
      signal.addEventListener("abort", wake, { once: true });
    });
  }

  /** One batch of text, read once from KV however many viewers ask. */
  batch(gen: number, seq: number): Promise<string | null> {
    const key = `${gen}:${seq}`;
    let hit = this.#batches.get(key);
    if (!hit) {
      hit = this.kv.get<string>(keys.artifactText(this.id, gen, seq)).then((e) => {
        if (e.value === null) this.#batches.delete(key);
        return e.value;
      });
      this.#batches.set(key, hit);
      if (this.#batches.size > BATCH_CACHE) this.#batches.delete(this.#batches.keys().next().value!);
    }
    return hit;
  }

  stop(): void {
    this.#abort.abort();
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
