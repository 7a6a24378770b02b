/**
 * Exact cl100k_base token counts (GPT-4 family, a fair proxy for modern models), fast enough for
 * ingest: the counting is WebAssembly (lib/wasm/token_counter.ts, which says how), over js-tiktoken's
 * copy of the cl100k vocabulary, one string of base64 tokens. `tests/lib/tokens_test.ts` checks the
 * counts equal gpt-tokenizer's on real sources and on generated edge cases. The one exception: a
 * single piece over 16,384 code units (a run of one class of characters that long) is counted in
 * windows.
 */
import cl100k from "js-tiktoken/ranks/cl100k_base";
import { loadWasm, randomSeed, writeUtf8 } from "./wasm.ts";

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

const instantiate = await loadWasm<Exports>("token_counter", { token_counter: { classify } });
/** Made at the first count (~30 ms): its tables take ~10 MB, which a process that never counts does not spend. */
let counter: Exports | null = null;

function tokenCounter(): Exports {
  if (counter) return counter;
  const wasm = instantiate();
  wasm.init(...randomSeed());
  addVocabulary(wasm);
  return counter = wasm;
}

/**
 * cl100k's mergeable tokens and their ranks (each one's token id, which is also its merge priority),
 * from js-tiktoken's lines of "label firstRank base64 base64 …", the ranks counting up along a line.
 * Special tokens (`<|endoftext|>` …) are not among them: a text that holds one is counted as plain
 * text. Each token's base64 is decoded straight into the counter's memory: split into ~100,000
 * strings all at once first, the vocabulary took ~10 MB more memory while it loaded.
 */
function addVocabulary(wasm: Exports): void {
  const text = cl100k.bpe_ranks;
  let count = 0;
  let most = 0;
  forEachVocabularyToken(text, (_rank, start, end) => {
    count++;
    most += ((end - start) >> 2) * 3;
  });
  const at = wasm.vocabularyAt(count, most);
  const ranks = new Int32Array(wasm.memory.buffer, at, count);
  const lengths = new Int32Array(wasm.memory.buffer, at + 4 * count, count);
  const bytes = new Uint8Array(wasm.memory.buffer, at + 8 * count, most);
  let token = 0;
  let written = 0;
  forEachVocabularyToken(text, (rank, start, end) => {
    const length = bytes.subarray(written).setFromBase64(text.slice(start, end)).written;
    ranks[token] = rank;
    lengths[token++] = length;
    written += length;
  });
  wasm.addVocabulary(count);
}

/** Calls `visit` with each token's rank and the span of its base64 in js-tiktoken's `text`. */
function forEachVocabularyToken(
  text: string,
  visit: (rank: number, start: number, end: number) => void,
): void {
  const fieldEnd = (from: number, lineEnd: number) => {
    const space = text.indexOf(" ", from);
    return space < 0 || space > lineEnd ? lineEnd : space;
  };
  for (let line = 0; line < text.length;) {
    const newline = text.indexOf("\n", line);
    const lineEnd = newline < 0 ? text.length : newline;
    const labelEnd = fieldEnd(line, lineEnd);
    const rankEnd = fieldEnd(labelEnd + 1, lineEnd);
    let rank = Number(text.slice(labelEnd + 1, rankEnd));
    for (let start = rankEnd + 1; start < lineEnd; rank++) {
      const end = fieldEnd(start, lineEnd);
      visit(rank, start, end);
      start = end + 1;
    }
    line = lineEnd + 1;
  }
}

/** Tokens in `text` with the cl100k_base BPE, exactly as gpt-tokenizer counts them. */
export function countTokens(text: string): number {
  const wasm = tokenCounter();
  return wasm.count(writeUtf8(text, wasm.memory, wasm.input));
}

/**
 * Tokens in `bytes` of valid UTF-8, as {@link countTokens} counts `new TextDecoder().decode(bytes)`
 * (which drops a leading byte order mark). An ingest has a file's bytes: copying them into the
 * counter saves encoding its text back (~0.05–0.1 s of the synthetic 100 MB ingest).
 */
export function countTokensInUtf8(bytes: Uint8Array): number {
  const text = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? bytes.subarray(3) : bytes;
  const wasm = tokenCounter();
  new Uint8Array(wasm.memory.buffer, wasm.input(text.byteLength), text.byteLength).set(text);
  return wasm.count(text.byteLength);
}

/**
 * What the counter holds now (for tests and diagnostics): pieces of over 8 bytes remembered and
 * their bytes, and its WebAssembly memory in all.
 */
export function tokenCounterState(): { pieces: number; pieceBytes: number; memoryBytes: number } {
  const wasm = tokenCounter();
  return {
    pieces: wasm.piecesHeld(),
    pieceBytes: wasm.pieceBytesHeld(),
    memoryBytes: wasm.memory.buffer.byteLength,
  };
}
