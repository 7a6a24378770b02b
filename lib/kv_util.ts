/** Deno KV helpers shared by every store: commit retries, batched writes and prefix deletes. */
import { utf8Length } from "./utf8.ts";

/** KV limits per atomic commit, with headroom (see DESIGN.md). */
const MAX_MUTATIONS = 900;
const MAX_COMMIT_BYTES = 700 * 1024;
/**
 * Deno KV also refuses a commit whose keys come to over 80 KiB in all ("Total key size too large"):
 * 900 keys of a file with a 60-character path do.
 */
const MAX_COMMIT_KEY_BYTES = 72 * 1024;

/** True for the transient error several processes on one local KV file can raise. */
export function isTransient(e: unknown): boolean {
  return e instanceof Error && /database is locked|busy/i.test(e.message);
}

/**
 * Runs `commit` and retries it with full-jitter backoff while the local KV file is locked by
 * another process. The callback builds a fresh atomic operation each time.
 */
export async function commitWithRetry(
  commit: () => Promise<Deno.KvCommitResult | Deno.KvCommitError>,
  attempts = 8,
): Promise<Deno.KvCommitResult | Deno.KvCommitError> {
  for (let i = 0;; i++) {
    try {
      return await commit();
    } catch (e) {
      if (!isTransient(e) || i >= attempts - 1) throw e;
      await new Promise((r) => setTimeout(r, Math.random() * Math.min(1000, 10 * 2 ** i)));
    }
  }
}

/**
 * The bytes of a key as KV encodes it: per part a type byte, its bytes and an end byte (a byte
 * array's zero bytes take two, as would a string's NULs, which no key of ours holds).
 */
function keySize(key: Deno.KvKey): number {
  let n = 0;
  for (const p of key) {
    n += typeof p === "string" ? utf8Length(p) + 2 : p instanceof Uint8Array ? 2 * p.length + 2 : 10;
  }
  return n;
}

/** A key as a string, the same for equal keys (and, rarely, for some unequal ones: a harmless wait). */
function keyId(key: Deno.KvKey): string {
  return key.map(String).join("\u0000");
}

function valueSize(value: unknown): number {
  if (value instanceof Uint8Array) return value.byteLength;
  if (typeof value === "string") return value.length * 3;
  // Byte arrays inside objects (blob metadata with inline bytes) count by length, without copying.
  let bytes = 0;
  const json = JSON.stringify(value, (_k, v) => {
    if (!(v instanceof Uint8Array)) return v;
    bytes += v.byteLength;
    return 0;
  });
  return (json?.length ?? 16) + bytes;
}

type Op = { key: Deno.KvKey; value?: unknown; expireIn?: number };

export interface KvBatchOptions {
  /** Added to every commit, so a writer that lost its lease writes nothing. */
  checks?: () => Deno.AtomicCheck[];
  /** The error a commit whose check failed throws. */
  onCheckFailed?: () => Error;
  /**
   * How many commits may be in flight at once (1 by default). A commit's landing is seen only when
   * the JavaScript thread pauses, so with one, KV's writer waits for a pause before it gets the
   * next. More are for writes nobody reads before the batch is flushed: commits that share no key
   * may land in another order (one retried while the file is locked lands after those behind it),
   * and one sent before an earlier one failed may still land. Commits that share a key never overlap.
   */
  inFlight?: number;
}

/**
 * Collects set/delete mutations and commits them in atomic operations that stay within KV's
 * limits. Commits run off the JavaScript thread while the next batch fills (a large ingest
 * overlaps them with its own work); a failed commit surfaces at a later call, and fails every
 * commit after it.
 */
export class KvBatch {
  #ops: Op[] = [];
  #bytes = 0;
  #keyBytes = 0;
  /** Commits sent and not yet awaited, oldest first, with their keys when more than one may run. */
  #sent: { done: Promise<void>; keys: Set<string> | null }[] = [];
  #failure: unknown = null;
  readonly #checks: () => Deno.AtomicCheck[];
  readonly #onCheckFailed: () => Error;
  readonly #inFlight: number;

  constructor(private readonly kv: Deno.Kv, options: KvBatchOptions = {}) {
    this.#checks = options.checks ?? (() => []);
    this.#onCheckFailed = options.onCheckFailed ?? (() => new Error("a KV check failed"));
    this.#inFlight = options.inFlight ?? 1;
  }

  /** Queues a set; commits first when the pending operation would grow past KV's limits. */
  async set(key: Deno.KvKey, value: unknown, expireIn?: number): Promise<void> {
    await this.#add({ key, value, expireIn }, keySize(key), valueSize(value));
  }

  /** Queues a delete. */
  async delete(key: Deno.KvKey): Promise<void> {
    await this.#add({ key }, keySize(key), 0);
  }

  async #add(op: Op, keyBytes: number, valueBytes: number): Promise<void> {
    const size = keyBytes + valueBytes;
    if (
      this.#ops.length + 1 > MAX_MUTATIONS || this.#bytes + size > MAX_COMMIT_BYTES ||
      this.#keyBytes + keyBytes > MAX_COMMIT_KEY_BYTES
    ) {
      await this.#send(this.#take());
    }
    this.#ops.push(op);
    this.#bytes += size;
    this.#keyBytes += keyBytes;
  }

  /** Commits everything queued so far, and waits for every commit still in flight. */
  async flush(): Promise<void> {
    await this.#send(this.#take());
    await this.#settle(0);
  }

  /** Sends a commit once fewer than `inFlight` are in flight and none of those shares a key with it. */
  async #send(ops: Op[]): Promise<void> {
    if (ops.length === 0) return;
    const keys = this.#inFlight > 1 ? new Set(ops.map((op) => keyId(op.key))) : null;
    const shares = keys !== null &&
      this.#sent.some((sent) => sent.keys!.values().some((key) => keys.has(key)));
    await this.#settle(shares ? 0 : this.#inFlight - 1);
    const done = this.#commit(ops);
    done.catch(() => {});
    this.#sent.push({ done, keys });
  }

  /** Waits until at most `most` commits are in flight; throws the first failure, then at every call. */
  async #settle(most: number): Promise<void> {
    if (this.#failure) throw this.#failure;
    while (this.#sent.length > most) {
      try {
        await this.#sent.shift()!.done;
      } catch (e) {
        this.#failure = e;
        throw e;
      }
    }
  }

  #take(): Op[] {
    const ops = this.#ops;
    this.#ops = [];
    this.#bytes = 0;
    this.#keyBytes = 0;
    return ops;
  }

  async #commit(ops: Op[]): Promise<void> {
    const result = await commitWithRetry(() => {
      const atomic = this.kv.atomic();
      for (const check of this.#checks()) atomic.check(check);
      for (const op of ops) {
        if ("value" in op) atomic.set(op.key, op.value, op.expireIn ? { expireIn: op.expireIn } : undefined);
        else atomic.delete(op.key);
      }
      return atomic.commit();
    });
    if (!result.ok) throw this.#onCheckFailed();
  }
}

/** Deletes every key under `prefix`, in batches. Returns how many were deleted. */
export async function deletePrefix(kv: Deno.Kv, prefix: Deno.KvKey): Promise<number> {
  let count = 0;
  const batch = new KvBatch(kv);
  for await (const entry of kv.list({ prefix }, { batchSize: 500 })) {
    await batch.delete(entry.key);
    count++;
  }
  await batch.flush();
  return count;
}
