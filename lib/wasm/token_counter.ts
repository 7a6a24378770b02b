/**
 * AssemblyScript, compiled to `token_counter.wasm` by `deno task build:wasm` (scripts/build_wasm.ts);
 * not imported by Deno. Exact cl100k_base token counts over UTF-8 bytes, for lib/tokens.ts.
 *
 * BPE works piece by piece: the text is first split by cl100k's pattern (CL100K_TOKEN_SPLIT_REGEX
 * in gpt-tokenizer) and every piece is encoded on its own, so a text's count is the sum of its
 * pieces' counts. A scanner that follows the pattern's alternatives in order does the split (the
 * classes of non-ASCII characters come from JavaScript's own `\p{L}`, `\p{N}` and `\s`, once per
 * character met); each piece's count is looked up in a table of pieces already counted, and a new
 * piece is byte-pair encoded over a table of the vocabulary, which JavaScript hands over at start.
 *
 * Counts are exact, with one exception: a piece over 16,384 UTF-16 code units (a run of one class
 * of characters that long) is counted window by window, each window exactly, so that no input
 * holds more than a few MB of merge state; such a piece's count may be off by about a token per
 * window from what its whole would make.
 */
import { bytesKey, grown, i32At, mix, setI32, SpanTable, zeroed } from "./spans";

/** The class of a code point, as the pattern sees it (LETTER …): from JavaScript. */
declare function classify(codePoint: u32): u32;

/** Classes of the pattern: letters (\p{L}), digits (\p{N}), whitespace (\s), the rest. */
const LETTER: u32 = 1;
const DIGIT: u32 = 2;
const WHITESPACE: u32 = 3;
const OTHER: u32 = 4;

const NL: u32 = 10;
const CR: u32 = 13;
const SPACE: u32 = 32;
const APOSTROPHE: u32 = 39;

/** Classes of the code points under U+10000, filled in as they are met (0: not yet). */
const planeClasses = new StaticArray<u8>(0x10000);

/** cl100k's mergeable tokens by their bytes, and (by id in the table) each one's rank. */
const vocabulary = new SpanTable(1 << 17);
let ranks: usize = 0;
const NO_RANK: i32 = 0x7fffffff;

/**
 * The pieces counted, and their counts, in two tables. Pieces of 2 to 8 bytes (most of them) are
 * keyed by their bytes as one number: per slot the key, and the count and length. Longer ones, up to
 * 256 bytes, are in a table of byte strings. Each table starts again past 65,536 pieces (a large
 * repository has 30–60k), the long one also past 512 KiB of them: ~4 MB in all.
 */
const SHORT_SLOTS: i32 = 1 << 17;
const shortKeys = heap.alloc(<usize> SHORT_SLOTS << 3);
/** Per slot: count << 8 | length; 0 is empty. */
const shortEntries = zeroed(SHORT_SLOTS);
let shortPieces: i32 = 0;
let shortSeed: u64 = 0;
const pieces = new SpanTable(1 << 16);
let pieceCounts: usize = 0;
let pieceRoom: i32 = 0;
const MAX_PIECES: i32 = 1 << 16;
const MAX_PIECE_BYTES: i32 = 1 << 19;
const SHORT_PIECE: i32 = 8;
/** Longer pieces are counted by {@link longPieceTokens}, and not remembered. */
const LONG_PIECE: i32 = 256;
/** A piece longer than this many UTF-16 code units is counted in windows of this many. */
const PIECE_WINDOW: i32 = 16_384;

let inputBytes: usize = 0;
let inputRoom: i32 = 0;
let vocabularyInput: usize = 0;
/** The width in bytes of the character {@link classAt} classified last. */
let width: usize = 1;

/**
 * Seeds the hashes (`seed`: random, per instance) and learns the ASCII classes. Then JavaScript
 * writes the vocabulary at {@link vocabularyAt} and calls {@link addVocabulary}.
 */
export function init(seedHigh: u32, seedLow: u32): void {
  const seed = (<u64> seedHigh << 32) | <u64> seedLow;
  vocabulary.seed = seed;
  pieces.seed = seed;
  shortSeed = mix(seed);
  for (let c: u32 = 0; c < 128; c++) unchecked(planeClasses[c] = <u8> classify(c));
}

/** Where to write `count` tokens: their ranks (i32), then their lengths (i32), then their bytes. */
export function vocabularyAt(count: i32, bytes: i32): usize {
  return vocabularyInput = heap.alloc((<usize> count << 3) + <usize> bytes);
}

export function addVocabulary(count: i32): void {
  const lengths = vocabularyInput + (<usize> count << 2);
  ranks = grown(0, <usize> count << 2);
  let bytes = 0;
  for (let i = 0; i < count; i++) bytes += i32At(lengths, i);
  vocabulary.reserve(count, bytes);
  let at = lengths + (<usize> count << 2);
  for (let i = 0; i < count; i++) {
    const length = i32At(lengths, i);
    const before = vocabulary.size;
    const id = vocabulary.intern(at, at + length);
    if (id == before) setI32(ranks, id, i32At(vocabularyInput, i));
    at += length;
  }
  heap.free(vocabularyInput);
}

/** Where to write `bytes` bytes of text, what was there kept; valid until the next call. */
export function input(bytes: i32): usize {
  if (inputRoom < bytes) inputBytes = grown(inputBytes, <usize> (inputRoom = max(bytes, 64 * 1024)));
  return inputBytes;
}

/** Tokens in the text of `length` bytes at {@link input}. */
export function count(length: i32): i32 {
  let total = 0;
  const end = inputBytes + <usize> length;
  for (let at = inputBytes; at < end;) {
    const to = pieceEnd(at, end);
    total += tokensOfPiece(at, to);
    at = to;
  }
  return total;
}

/** Pieces of over 8 bytes remembered now (for tests). */
export function piecesHeld(): i32 {
  return pieces.size;
}

/** Their bytes in all. */
export function pieceBytesHeld(): i32 {
  return pieces.poolUsed;
}

function tokensOfPiece(from: usize, to: usize): i32 {
  const length = <i32> (to - from);
  if (length == 1) return 1; // every byte is a token
  if (length <= SHORT_PIECE) return shortPieceTokens(from, length);
  if (length > LONG_PIECE) return longPieceTokens(from, to);
  if (pieces.size >= MAX_PIECES || pieces.poolUsed >= MAX_PIECE_BYTES) pieces.clear();
  const before = pieces.size;
  const id = pieces.intern(from, to);
  if (id < before) return i32At(pieceCounts, id);
  const tokens = bytePairCount(from, to);
  if (id == pieceRoom) pieceCounts = grown(pieceCounts, <usize> (pieceRoom = max(1024, pieceRoom * 2)) << 2);
  setI32(pieceCounts, id, tokens);
  return tokens;
}

function shortPieceTokens(from: usize, length: i32): i32 {
  const key = bytesKey(from, length);
  const mask = SHORT_SLOTS - 1;
  let slot = <i32> mix(key ^ shortSeed) & mask;
  for (;; slot = (slot + 1) & mask) {
    const entry = i32At(shortEntries, slot);
    if (entry == 0) break;
    if ((entry & 0xff) == length && load<u64>(shortKeys + (<usize> slot << 3)) == key) return entry >> 8;
  }
  if (shortPieces * 2 >= SHORT_SLOTS) {
    memory.fill(shortEntries, 0, <usize> SHORT_SLOTS << 2);
    shortPieces = 0;
    slot = <i32> mix(key ^ shortSeed) & mask;
  }
  const tokens = bytePairCount(from, from + <usize> length);
  shortPieces++;
  store<u64>(shortKeys + (<usize> slot << 3), key);
  setI32(shortEntries, slot, (tokens << 8) | length);
  return tokens;
}

function rankOf(from: usize, to: usize): i32 {
  const id = vocabulary.find(from, to);
  return id < 0 ? NO_RANK : i32At(ranks, id);
}

/** {@link bytePairCount}'s part starts and pair ranks, reused from piece to piece. */
let partStarts: usize = 0;
let pairRanks: usize = 0;
let partRoom: i32 = 0;

/**
 * How many tokens byte-pair encoding makes of one piece: repeatedly merge the adjacent pair of
 * parts whose joined bytes have the lowest rank (the leftmost of equals), until no pair is a token.
 */
function bytePairCount(from: usize, to: usize): i32 {
  const n = <i32> (to - from);
  if (n <= 1 || rankOf(from, to) != NO_RANK) return min(n, 1);
  if (partRoom < n + 1) {
    partRoom = max(n + 1, partRoom * 2);
    partStarts = grown(partStarts, <usize> partRoom << 2);
    pairRanks = grown(pairRanks, <usize> partRoom << 2);
  }
  // parts are [from + starts[p], from + starts[p + 1]); ranks[p] is the rank of parts p and p + 1 joined
  const starts = partStarts;
  const ranks = pairRanks;
  for (let i = 0; i <= n; i++) setI32(starts, i, i);
  setI32(ranks, n - 1, NO_RANK);
  setI32(ranks, n, NO_RANK);
  for (let i = 0; i + 2 <= n; i++) setI32(ranks, i, rankOf(from + i, from + i + 2));
  let parts = n;
  while (parts > 1) {
    let lowest = -1;
    let lowestRank = NO_RANK;
    for (let p = 0; p < parts - 1; p++) {
      const rank = i32At(ranks, p);
      if (rank < lowestRank) {
        lowestRank = rank;
        lowest = p;
      }
    }
    if (lowest < 0) break;
    const at = <usize> lowest << 2;
    memory.copy(starts + at + 4, starts + at + 8, <usize> (parts - lowest - 1) << 2);
    memory.copy(ranks + at, ranks + at + 4, <usize> (parts - lowest) << 2);
    parts--;
    setI32(ranks, lowest, pairRank(from, starts, lowest, parts));
    if (lowest > 0) setI32(ranks, lowest - 1, pairRank(from, starts, lowest - 1, parts));
  }
  return parts;
}

function pairRank(from: usize, starts: usize, p: i32, parts: i32): i32 {
  if (p + 2 > parts) return NO_RANK;
  return rankOf(from + <usize> i32At(starts, p), from + <usize> i32At(starts, p + 2));
}

/**
 * A long piece (a run of letters, symbols or spaces), window by window, each in O(n log n): the
 * simple merge loop of {@link bytePairCount} is quadratic, and one 100 KB run took it seconds.
 */
function longPieceTokens(from: usize, to: usize): i32 {
  let total = 0;
  for (let at = from; at < to;) {
    let units = 0;
    let end = at;
    while (end < to) {
      const bytes = utf8Width(load<u8>(end));
      const codeUnits = bytes == 4 ? 2 : 1;
      if (units + codeUnits > PIECE_WINDOW) break;
      units += codeUnits;
      end += bytes;
    }
    total += heapBytePairCount(at, end);
    at = end;
  }
  return total;
}

/**
 * {@link heapBytePairCount}'s parts and heap, reused from window to window: per part the offset of
 * the next part (n past the last), of the previous one, and whether it was merged away.
 */
let nextPart: usize = 0;
let prevPart: usize = 0;
let goneParts: usize = 0;
let heapKeys: usize = 0;
let heapRoom: i32 = 0;
let heapSize: i32 = 0;

/**
 * What {@link bytePairCount} returns, with a heap: every adjacent pair of parts that is a token is
 * in the heap by (rank, offset), so the lowest rank, leftmost first, comes out next. An entry is
 * checked when it comes out (its parts may have been merged since): its left part must still be
 * there and still make a pair of that rank.
 */
function heapBytePairCount(from: usize, to: usize): i32 {
  const n = <i32> (to - from);
  if (n <= 1 || rankOf(from, to) != NO_RANK) return min(n, 1);
  if (heapRoom < 3 * n) {
    heapRoom = 3 * n;
    nextPart = grown(nextPart, <usize> n << 2);
    prevPart = grown(prevPart, <usize> n << 2);
    goneParts = grown(goneParts, <usize> n);
    heapKeys = grown(heapKeys, <usize> heapRoom << 3);
  }
  for (let i = 0; i < n; i++) {
    setI32(nextPart, i, i + 1);
    setI32(prevPart, i, i - 1);
  }
  memory.fill(goneParts, 0, <usize> n);
  heapSize = 0;
  for (let p = 0; p + 1 < n; p++) offer(from, n, p);
  let parts = n;
  while (heapSize > 0) {
    const key = popKey();
    const p = <i32> (key & 0xffffffff);
    if (load<u8>(goneParts + <usize> p) != 0 || heapPairRank(from, n, p) != <i32> (key >> 32)) continue;
    const q = i32At(nextPart, p);
    store<u8>(goneParts + <usize> q, 1);
    const after = i32At(nextPart, q);
    setI32(nextPart, p, after);
    if (after < n) setI32(prevPart, after, p);
    parts--;
    const before = i32At(prevPart, p);
    if (before >= 0) offer(from, n, before);
    offer(from, n, p);
  }
  return parts;
}

function heapPairRank(from: usize, n: i32, p: i32): i32 {
  const q = i32At(nextPart, p);
  if (q >= n) return NO_RANK;
  return rankOf(from + <usize> p, from + <usize> i32At(nextPart, q));
}

function offer(from: usize, n: i32, p: i32): void {
  const rank = heapPairRank(from, n, p);
  if (rank != NO_RANK) pushKey((<u64> rank << 32) | <u64> p);
}

/** A binary min-heap of keys (rank << 32 | offset) at `heapKeys`. */
function pushKey(key: u64): void {
  let i = heapSize++;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    const above = load<u64>(heapKeys + (<usize> parent << 3));
    if (above <= key) break;
    store<u64>(heapKeys + (<usize> i << 3), above);
    i = parent;
  }
  store<u64>(heapKeys + (<usize> i << 3), key);
}

function popKey(): u64 {
  const top = load<u64>(heapKeys);
  const last = load<u64>(heapKeys + (<usize> --heapSize << 3));
  let i = 0;
  for (;;) {
    let child = 2 * i + 1;
    if (child >= heapSize) break;
    let key = load<u64>(heapKeys + (<usize> child << 3));
    if (child + 1 < heapSize) {
      const right = load<u64>(heapKeys + (<usize> (child + 1) << 3));
      if (right < key) {
        key = right;
        child++;
      }
    }
    if (key >= last) break;
    store<u64>(heapKeys + (<usize> i << 3), key);
    i = child;
  }
  store<u64>(heapKeys + (<usize> i << 3), last);
  return top;
}

function utf8Width(lead: u32): usize {
  return lead < 0x80 ? 1 : lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : 4;
}

/** The class of the character at `at`, without a call when it is ASCII. */
function classOf(at: usize): u32 {
  const c = <u32> load<u8>(at);
  return c < 0x80 ? <u32> unchecked(planeClasses[c]) : classAt(at);
}

/** The class of the character at `at` (the input is well-formed UTF-8); sets {@link width}. */
function classAt(at: usize): u32 {
  const lead = <u32> load<u8>(at);
  if (lead < 0x80) {
    width = 1;
    return <u32> unchecked(planeClasses[lead]);
  }
  const second = <u32> load<u8>(at + 1) & 0x3f;
  if (lead < 0xe0) {
    width = 2;
    return planeClass(((lead & 0x1f) << 6) | second);
  }
  const third = <u32> load<u8>(at + 2) & 0x3f;
  if (lead < 0xf0) {
    width = 3;
    return planeClass(((lead & 0x0f) << 12) | (second << 6) | third);
  }
  width = 4;
  return classify(((lead & 0x07) << 18) | (second << 12) | (third << 6) | (<u32> load<u8>(at + 3) & 0x3f));
}

function planeClass(codePoint: u32): u32 {
  let kind = <u32> unchecked(planeClasses[codePoint]);
  if (kind == 0) unchecked(planeClasses[codePoint] = <u8> (kind = classify(codePoint)));
  return kind;
}

/** The end of the run of characters of class `kind` from `at`. */
function runEnd(at: usize, end: usize, kind: u32): usize {
  while (at < end) {
    const c = <u32> load<u8>(at);
    if (c < 0x80) {
      if (<u32> unchecked(planeClasses[c]) != kind) break;
      at++;
    } else {
      if (classAt(at) != kind) break;
      at += width;
    }
  }
  return at;
}

/**
 * The end of the run of digits from `at`, at most three of them. The loop repeats runEnd's step on
 * purpose: the two sharing a step function made counting ~50 % slower (a throwaway driver).
 */
function digitsEnd(at: usize, end: usize): usize {
  for (let n = 0; at < end && n < 3; n++) {
    const c = <u32> load<u8>(at);
    if (c < 0x80) {
      if (<u32> unchecked(planeClasses[c]) != DIGIT) break;
      at++;
    } else {
      if (classAt(at) != DIGIT) break;
      at += width;
    }
  }
  return at;
}

/** The contraction suffixes of the pattern's first alternative, lower-cased: 's 'd 'm 't 'll 've 're. */
function contractionEnd(at: usize, end: usize): usize {
  if (at + 1 >= end) return 0;
  const a = <u32> load<u8>(at + 1) | 0x20;
  if (a == 0x73 || a == 0x64 || a == 0x6d || a == 0x74) return at + 2; // s d m t
  if (at + 2 >= end) return 0;
  const b = <u32> load<u8>(at + 2) | 0x20;
  if ((a == 0x6c && b == 0x6c) || (a == 0x76 && b == 0x65) || (a == 0x72 && b == 0x65)) return at + 3;
  return 0;
}

function isNewline(c: u32): bool {
  return c == NL || c == CR;
}

/**
 * The end of the piece that starts at `at`, following the pattern's alternatives in order:
 * `'(?:[sS]|[dD]|[mM]|[tT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 * ?[^\s\p{L}\p{N}]+[\r\n]*|\s+$|\s*[\r\n]|\s+(?!\S)|\s`.
 */
function pieceEnd(at: usize, end: usize): usize {
  const c = <u32> load<u8>(at);
  const kind = c < 0x80 ? <u32> unchecked(planeClasses[c]) : classAt(at);
  const next = c < 0x80 ? at + 1 : at + width;
  if (c == APOSTROPHE) {
    const j = contractionEnd(at, end);
    if (j != 0) return j;
  }
  if (kind == LETTER) return runEnd(at, end, LETTER);
  if (kind != DIGIT && !isNewline(c) && next < end && classOf(next) == LETTER) {
    return runEnd(next, end, LETTER);
  }
  if (kind == DIGIT) return digitsEnd(at, end);
  const k = c == SPACE ? at + 1 : at;
  if (k < end && classOf(k) == OTHER) {
    let j = runEnd(k, end, OTHER);
    while (j < end && isNewline(load<u8>(j))) j++;
    return j;
  }
  // whitespace: the run, then the pattern's four whitespace alternatives in order
  let j = next;
  let last = at;
  let lastNewline: usize = isNewline(c) ? at : 0;
  let newlineSeen = isNewline(c);
  while (j < end) {
    const d = <u32> load<u8>(j);
    if (d < 0x80) {
      if (<u32> unchecked(planeClasses[d]) != WHITESPACE) break;
      width = 1;
    } else if (classAt(j) != WHITESPACE) break;
    if (isNewline(d)) {
      lastNewline = j;
      newlineSeen = true;
    }
    last = j;
    j += width;
  }
  if (j == end) return end;
  if (newlineSeen) return lastNewline + 1;
  return last > at ? last : next;
}
