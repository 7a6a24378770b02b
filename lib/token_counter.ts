/**
 * Token counts for an ingest, off the main thread once the repository is large enough to be worth
 * it: exact counting is about a third of a large ingest's CPU time, and in a Worker it runs on the
 * second core while the main thread unpacks, indexes and stores. A small repository (most uploads,
 * every test fixture) never starts one. Where Workers cannot start, or one fails, counting goes on
 * in the calling thread.
 */
import { countTokens } from "./tokens.ts";

/**
 * Text counted on the calling thread before a Worker is started: a Worker costs ~0.2 s to start and
 * ~50 MB (its own copy of the tokenizer's tables), which pays off only on large repositories.
 */
const INLINE_CHARS = 8 * 1024 * 1024;

export class TokenCounter {
  #inlineChars = 0;

  constructor(private readonly inlineLimit = INLINE_CHARS) {}

  #worker: Worker | null = null;
  #failed = false;
  #nextId = 0;
  /** Counts the Worker answered (for tests and benchmarks). */
  offloaded = 0;
  readonly #pending = new Map<number, { resolve(n: number): void; text: string }>();

  /** The cl100k token count of `text`; exact, wherever it is counted. */
  count(text: string): Promise<number> {
    if (this.#failed || this.#inlineChars < this.inlineLimit) {
      this.#inlineChars += text.length;
      return Promise.resolve(countTokens(text));
    }
    const worker = this.#worker ?? this.#start();
    if (!worker) return Promise.resolve(countTokens(text));
    const id = this.#nextId++;
    return new Promise((resolve) => {
      this.#pending.set(id, { resolve, text });
      worker.postMessage({ id, text });
    });
  }

  /** Stops the Worker, if one was started; for when no count is awaited any more (done or failed). */
  close(): void {
    this.#worker?.terminate();
    this.#worker = null;
    this.#pending.clear();
  }

  #start(): Worker | null {
    try {
      this.#worker = new Worker(new URL("./token_worker.ts", import.meta.url), { type: "module" });
    } catch {
      this.#failed = true;
      return null;
    }
    this.#worker.onmessage = (e: MessageEvent<{ id: number; tokens: number }>) => {
      const job = this.#pending.get(e.data.id);
      this.#pending.delete(e.data.id);
      this.offloaded++;
      job?.resolve(e.data.tokens);
    };
    this.#worker.onerror = (e) => {
      // counting goes on here: what the Worker had not answered yet too
      e.preventDefault();
      this.#failed = true;
      this.#worker?.terminate();
      this.#worker = null;
      for (const [id, job] of this.#pending) {
        this.#pending.delete(id);
        job.resolve(countTokens(job.text));
      }
    };
    return this.#worker;
  }
}
