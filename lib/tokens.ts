/**
 * Exact cl100k_base token counts (GPT-4 family, a fair proxy for modern models), fast enough for
 * ingest: the counting is WebAssembly (lib/wasm/token_counter.ts, which says how), over js-tiktoken's
 * copy of the cl100k vocabulary, one string of base64 tokens. `tests/lib/tokens_test.ts` checks the
 * counts equal gpt-tokenizer's on real sources and on generated edge cases. The one exception: a
 * single piece over 16,384 code units (a run of one class of characters that long) is counted in
 * windows.
 */
import cl100k from "js-tiktoken/ranks/cl100k_base";
import { loadWasm, randomSeed } from "./wasm.ts";

interface Exports {
  memory: WebAssembly.Memory;
  init(seedHigh: number, seedLow: number): void;
  vocabularyAt(count: number, bytes: number): number;
  addVocabulary(count: number): void;
  input(bytes: number): number;
  count(length: number): number;
  piecesHeld(): number;
  pieceBytesHeld(): number;
}

/** Classes of cl100k's pattern, as token_counter.ts numbers them. */
const LETTER = 1;
const DIGIT = 2;
const WHITESPACE = 3;
const OTHER = 4;

function classify(codePoint: number): number {
  const char = String.fromCodePoint(codePoint);
  if (/\p{L}/u.test(char)) return LETTER;
  if (/\p{N}/u.test(char)) return DIGIT;
  return /\s/u.test(char) ? WHITESPACE : OTHER;
}

const wasm = (await loadWasm<Exports>("token_counter", { token_counter: { classify } }))();
wasm.init(...randomSeed());
addVocabulary();

/**
 * cl100k's mergeable tokens and their ranks (each one's token id, which is also its merge priority),
 * from js-tiktoken's lines of "label firstRank base64 base64 …", the ranks counting up along a line.
 * Special tokens (`<|endoftext|>` …) are not among them: a text that holds one is counted as plain
 * text.
 */
function addVocabulary(): void {
  const lines = cl100k.bpe_ranks.split("\n").map((line) => line.split(" "));
  let count = 0;
  let most = 0;
  for (const fields of lines) {
    count += fields.length - 2;
    for (let i = 2; i < fields.length; i++) most += Math.ceil(fields[i].length / 4) * 3;
  }
  const at = wasm.vocabularyAt(count, most);
  const ranks = new Int32Array(wasm.memory.buffer, at, count);
  const lengths = new Int32Array(wasm.memory.buffer, at + 4 * count, count);
  const bytes = new Uint8Array(wasm.memory.buffer, at + 8 * count, most);
  let token = 0;
  let written = 0;
  for (const fields of lines) {
    for (let i = 2, rank = Number(fields[1]); i < fields.length; i++, rank++, token++) {
      const decoded = atob(fields[i]); // a string of char codes 0–255
      for (let k = 0; k < decoded.length; k++) bytes[written++] = decoded.charCodeAt(k);
      ranks[token] = rank;
      lengths[token] = decoded.length;
    }
  }
  wasm.addVocabulary(count);
}

const utf8 = new TextEncoder();

/** Tokens in `text` with the cl100k_base BPE, exactly as gpt-tokenizer counts them. */
export function countTokens(text: string): number {
  const room = text.length * 3;
  const at = wasm.input(room);
  const { written } = utf8.encodeInto(text, new Uint8Array(wasm.memory.buffer, at, room));
  return wasm.count(written);
}

/** What the table of pieces counted holds now (for tests and diagnostics). */
export function pieceCacheSize(): { pieces: number; bytes: number } {
  return { pieces: wasm.piecesHeld(), bytes: wasm.pieceBytesHeld() };
}
