/**
 * Appends a generation's text to KV in batches (at most every ~100 ms or ~1 KB), each batch
 * committed with the record's new `textSeq` and the job's lease check, so viewers on every
 * instance see whole batches in order and a worker that lost its job writes nothing.
 */
import { type ArtifactRecord, timeLeft } from "./artifacts.ts";
import { PermanentJobError } from "./errors.ts";
import { keys } from "./keys.ts";
import { commitWithRetry } from "./kv_util.ts";

export interface WriterOptions {
  maxBatchChars: number;
  maxDelayMs: number;
}

const MAX_VALUE_CHARS = 16 * 1024;

export class ArtifactWriter {
  #pending = "";
  #lastFlush = 0;
  #chain: Promise<void> = Promise.resolve();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #failure: unknown = null;
  /** Text an earlier attempt already published; the new output must repeat it exactly. */
  #skip: string;

  constructor(
    private readonly kv: Deno.Kv,
    private record: ArtifactRecord,
    private readonly leaseCheck: () => Deno.AtomicCheck,
    private readonly leaseLost: () => Error,
    published: string,
    private readonly options: WriterOptions = { maxBatchChars: 1024, maxDelayMs: 100 },
  ) {
    this.#skip = published;
  }

  /** Adds streamed text; commits a batch when it is big or old enough. */
  async push(text: string): Promise<void> {
    if (this.#failure) throw this.#failure;
    if (this.#skip) {
      const n = Math.min(this.#skip.length, text.length);
      if (text.slice(0, n) !== this.#skip.slice(0, n)) throw interruptedError();
      this.#skip = this.#skip.slice(n);
      text = text.slice(n);
    }
    if (!text) return;
    this.#pending += text;
    const now = Date.now();
    if (
      this.#pending.length >= this.options.maxBatchChars || now - this.#lastFlush >= this.options.maxDelayMs
    ) {
      await this.flush();
    } else if (!this.#timer) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.flush().catch((e) => this.#failure = e);
      }, this.options.maxDelayMs);
    }
  }

  /** Commits what is pending (in order with any flush already under way). */
  flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#chain = this.#chain.then(() => this.#commitPending());
    return this.#chain;
  }

  async #commitPending(): Promise<void> {
    while (this.#pending) {
      const text = this.#pending.slice(0, MAX_VALUE_CHARS);
      this.#pending = this.#pending.slice(text.length);
      await this.#write(text, {});
    }
    this.#lastFlush = Date.now();
  }

  async #write(text: string | null, changes: Partial<ArtifactRecord>): Promise<void> {
    const seq = text === null ? this.record.textSeq : this.record.textSeq + 1;
    const next: ArtifactRecord = {
      ...this.record,
      status: "generating",
      ...changes,
      textSeq: seq,
      updatedAt: Date.now(),
    };
    const res = await commitWithRetry(() => {
      const expireIn = timeLeft(next, Date.now());
      const atomic = this.kv.atomic().check(this.leaseCheck());
      if (text !== null) atomic.set(keys.artifactText(next.id, next.gen, seq), text, { expireIn });
      return atomic.set(keys.artifact(next.id), next, { expireIn }).commit();
    });
    if (!res.ok) throw this.leaseLost();
    this.record = next;
  }

  /** Flushes the rest and commits the final record (status done, usage…). */
  async finish(changes: Partial<ArtifactRecord>): Promise<ArtifactRecord> {
    if (this.#skip) throw interruptedError();
    await this.flush();
    if (this.#failure) throw this.#failure;
    await (this.#chain = this.#chain.then(() => this.#write(null, changes)));
    return this.record;
  }

  /** Stops the flush timer (on failure paths). */
  close(): void {
    clearTimeout(this.#timer);
  }

  get current(): ArtifactRecord {
    return this.record;
  }
}

/** The generation failed after text was shown: a new model call could not take that text back. */
export function interruptedError(): PermanentJobError {
  return new PermanentJobError(
    "generation_interrupted",
    "The generation was interrupted after text was shown and could not be resumed exactly. Ask for it again.",
    502,
  );
}
