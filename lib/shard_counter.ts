/**
 * The counting half of a retrieval index shard, done by WebAssembly (lib/wasm/shard_counter.ts,
 * compiled to shard_counter.wasm by `deno task build:wasm`): per chunk field, its distinct raw
 * tokens; per term and chunk field it occurs in, its count. One instance per index being built:
 * a WebAssembly memory never shrinks, so it holds its largest shard's tables until the index is
 * done.
 */
const wasmModule = await WebAssembly.compile(
  await Deno.readFile(new URL("./wasm/shard_counter.wasm", import.meta.url)),
);

interface Exports {
  memory: WebAssembly.Memory;
  init(seed: number): void;
  input(bytes: number): number;
  addField(mark: number, length: number): number;
  tokens(): number;
  terms(): number;
  termBytes(): number;
  termEnds(): number;
  entriesAt(): number;
  entriesLength(): number;
  clear(): void;
}

const utf8 = new TextEncoder();
const ascii = new TextDecoder("latin1");

/** What a shard counted; valid until the counter's next call. */
export interface ShardTermCounts {
  /** By term id, in the order first seen. */
  terms: string[];
  /** Per term and chunk field it occurs in, in the order met: term id, mark, count. */
  entries: Int32Array;
}

export class ShardCounter {
  readonly #wasm: Exports;

  constructor() {
    const instance = new WebAssembly.Instance(wasmModule, {
      env: {
        abort: () => {
          throw new Error("shard_counter.wasm aborted");
        },
      },
    });
    this.#wasm = instance.exports as unknown as Exports;
    // a random seed per instance, so no crafted file can make its words collide (lib/wasm/spans.ts)
    this.#wasm.init(crypto.getRandomValues(new Uint32Array(1))[0]);
  }

  /** Distinct raw tokens so far. */
  get tokens(): number {
    return this.#wasm.tokens();
  }

  /**
   * Counts `text[from, to)` as the field `mark` (1 + chunk id × fields + field id); returns its
   * distinct raw tokens (MiniSearch's field length).
   */
  addField(mark: number, text: string, from: number, to: number): number {
    const span = text.slice(from, to);
    const at = this.#wasm.input(span.length * 3);
    const { written } = utf8.encodeInto(span, new Uint8Array(this.#wasm.memory.buffer, at, span.length * 3));
    return this.#wasm.addField(mark, written);
  }

  /** The counts so far; then the counter starts again at term and token id 0. */
  take(): ShardTermCounts {
    const wasm = this.#wasm;
    const count = wasm.terms();
    const ends = new Int32Array(wasm.memory.buffer, wasm.termEnds(), count);
    // terms are lower-cased ASCII words: one string of them all, sliced
    const all = ascii.decode(new Uint8Array(wasm.memory.buffer, wasm.termBytes(), ends[count - 1] ?? 0));
    const terms = new Array<string>(count);
    for (let id = 0, start = 0; id < count; start = ends[id++]) terms[id] = all.slice(start, ends[id]);
    const entries = new Int32Array(wasm.memory.buffer, wasm.entriesAt(), wasm.entriesLength());
    wasm.clear();
    return { terms, entries };
  }
}
