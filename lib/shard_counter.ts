/**
 * A retrieval index shard's words counted and its postings written, by WebAssembly
 * (lib/wasm/shard_counter.ts, compiled to shard_counter.wasm by `deno task build:wasm`): per chunk
 * field, its distinct raw tokens; per term and field, the chunks it occurs in and its count in
 * each. One instance per index being built:
 * a WebAssembly memory never shrinks, so it holds its largest shard's tables until the index is
 * done.
 */
import { loadWasm, randomSeed, writeUtf8 } from "./wasm.ts";

const instantiate = await loadWasm<Exports>("shard_counter");

interface Exports {
  memory: WebAssembly.Memory;
  init(seedHigh: number, seedLow: number): void;
  input(bytes: number): number;
  addField(mark: number, length: number): number;
  tokenCount(): number;
  termCount(): number;
  termBytes(): number;
  termEnds(): number;
  encode(fields: number): number;
  sortedTerms(): number;
  postingsAt(): number;
  clear(): void;
}

const ascii = new TextDecoder("latin1");

/** What a shard counted, encoded; valid until the counter's next call. */
export interface ShardPostings {
  /** Sorted (by UTF-16 code units, which for these ASCII terms is by bytes). */
  terms: string[];
  /** Per term and field, its postings, laid out as lib/index_shard.ts says. */
  postings: Uint8Array;
}

export class ShardCounter {
  readonly #wasm: Exports;

  constructor() {
    this.#wasm = instantiate();
    this.#wasm.init(...randomSeed());
  }

  /** Distinct raw tokens so far. */
  get tokens(): number {
    return this.#wasm.tokenCount();
  }

  /**
   * Counts `text[from, to)` as the field `mark` (1 + chunk id × fields + field id); returns its
   * distinct raw tokens (MiniSearch's field length).
   */
  addField(mark: number, text: string, from: number, to: number): number {
    const wasm = this.#wasm;
    return wasm.addField(mark, writeUtf8(text.slice(from, to), wasm.memory, wasm.input));
  }

  /**
   * The counts so far, their terms sorted and their postings encoded for a shard of `fields`
   * fields; then the counter starts again at term and token id 0.
   */
  take(fields: number): ShardPostings {
    const wasm = this.#wasm;
    const length = wasm.encode(fields);
    const count = wasm.termCount();
    const ends = new Int32Array(wasm.memory.buffer, wasm.termEnds(), count);
    const order = new Int32Array(wasm.memory.buffer, wasm.sortedTerms(), count);
    // terms are lower-cased ASCII words: one string of them all, sliced
    const all = ascii.decode(new Uint8Array(wasm.memory.buffer, wasm.termBytes(), ends[count - 1] ?? 0));
    const terms = new Array<string>(count);
    for (let r = 0; r < count; r++) {
      const id = order[r];
      terms[r] = all.slice(id === 0 ? 0 : ends[id - 1], ends[id]);
    }
    const postings = new Uint8Array(wasm.memory.buffer, wasm.postingsAt(), length);
    wasm.clear();
    return { terms, postings };
  }
}
