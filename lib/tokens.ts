/**
 * Exact cl100k_base token counts (GPT-4 family, a fair proxy for modern models), fast enough for
 * ingest, from js-tiktoken's copy of the cl100k vocabulary: one string of base64 tokens, which a
 * process loads for ~10 MB of memory, against ~30 MB for gpt-tokenizer's copy (a module of 100,256
 * array literals). The two copies hold the same tokens at the same ranks.
 *
 * BPE works piece by piece: the text is first split by cl100k's pattern (CL100K_TOKEN_SPLIT_REGEX
 * in gpt-tokenizer) and every piece is encoded on its own, so a text's count is the sum of its
 * pieces' counts (and a piece counted alone splits into just itself). Here a scanner that follows
 * the pattern's alternatives in order does the split, and each piece's count is looked up in a
 * table of pieces already counted; a new piece is byte-pair encoded here, over a table of the
 * vocabulary keyed by bytes. gpt-tokenizer's own counter was ~8× slower on source code (a Unicode
 * regex, a match array, a substring and a map lookup per piece) and far slower on long pieces
 * such as CJK sentences (a string decoded per pair looked up), and its tables take ~17 MB of heap
 * against ~4 MB here. `tests/lib/tokens_test.ts` checks the counts equal gpt-tokenizer's on real
 * sources and on generated edge cases. The one exception: a single piece over 16,384 code units (a
 * run of one class of characters that long) is counted in windows, see {@link longPieceTokens}.
 */
import cl100k from "js-tiktoken/ranks/cl100k_base";
import { SpanTable, withRoom } from "./span_table.ts";

/**
 * The table of pieces counted starts again past 65,536 pieces (a large repository has 30–60k) or
 * 512 Ki code units of them: ~4 MB in all. Pieces of up to 256 code units are remembered, so
 * without the second bound a repository of long distinct words grew it to ~45 MB.
 */
const MAX_PIECES = 1 << 16;
const MAX_PIECE_UNITS = 1 << 19;
const pieces = new SpanTable();
let pieceTokens = new Int32Array(1024);

/** What the table of pieces counted holds now (for tests and diagnostics). */
export function pieceCacheSize(): { pieces: number; units: number } {
  return { pieces: pieces.size, units: pieces.units };
}

/** Tokens in `text` with the cl100k_base BPE, exactly as gpt-tokenizer counts them. */
export function countTokens(text: string): number {
  let total = 0;
  for (let i = 0; i < text.length;) {
    const j = pieceEnd(text, i, text.length);
    total += tokensOfPiece(text, i, j);
    i = j;
  }
  return total;
}

/** Longer pieces are counted by {@link longPieceTokens}, and not remembered. */
const LONG_PIECE = 256;
/** A piece longer than this is counted in windows of this many code units (see longPieceTokens). */
const PIECE_WINDOW = 16_384;

function tokensOfPiece(text: string, start: number, end: number): number {
  if (end - start > LONG_PIECE) return longPieceTokens(text, start, end);
  if (pieces.size >= MAX_PIECES || pieces.units >= MAX_PIECE_UNITS) pieces.clear();
  const before = pieces.size;
  const id = pieces.intern(text, start, end);
  if (id < before) return pieceTokens[id];
  pieceTokens = withRoom(pieceTokens, id);
  if (isAscii(text, start, end)) return pieceTokens[id] = bytePairCount(text, start, end);
  const bytes = byteString(utf8.encode(text.slice(start, end)));
  return pieceTokens[id] = bytePairCount(bytes, 0, bytes.length);
}

/**
 * A long piece (a run of letters, symbols or spaces) in O(n log n): the simple merge loop of
 * {@link bytePairCount} is quadratic, and one 100 KB run took it 3–23 s (so a 1 MB one, many
 * minutes, with the event loop blocked). A piece over 16,384 code units is counted window by
 * window, each exactly, so that no input holds more than a few MB of merge state: such a piece's
 * count may be off by about a token per window from what its whole would make.
 */
function longPieceTokens(text: string, start: number, end: number): number {
  let total = 0;
  for (let from = start; from < end;) {
    let to = Math.min(end, from + PIECE_WINDOW);
    if (to < end && isHighSurrogate(text.charCodeAt(to - 1))) to--;
    const bytes = isAscii(text, from, to)
      ? text.slice(from, to)
      : byteString(utf8.encode(text.slice(from, to)));
    total += heapBytePairCount(bytes);
    from = to;
  }
  return total;
}

/**
 * What {@link bytePairCount} returns, with a heap: every adjacent pair of parts that is a token is
 * in the heap by (rank, offset), so the lowest rank, leftmost first, comes out next. An entry is
 * checked when it comes out (its parts may have been merged since): its left part must still be
 * there and still make a pair of that rank.
 */
function heapBytePairCount(bytes: string): number {
  const n = bytes.length;
  if (n <= 1 || rankOfBytes(bytes, 0, n) !== NO_RANK) return Math.min(n, 1);
  // parts by the offset of their first byte: the next part's offset (n past the last) and the previous's
  if (nextPart.length < n) {
    nextPart = new Int32Array(n);
    prevPart = new Int32Array(n);
    goneParts = new Uint8Array(n);
  }
  const next = nextPart;
  const prev = prevPart;
  const gone = goneParts;
  const heap = pairHeap;
  for (let i = 0; i < n; i++) {
    next[i] = i + 1;
    prev[i] = i - 1;
    gone[i] = 0;
  }
  heap.reset(3 * n);
  const pairRank = (p: number) => (next[p] < n ? rankOfBytes(bytes, p, next[next[p]]) : NO_RANK);
  const offer = (p: number) => {
    const rank = pairRank(p);
    if (rank !== NO_RANK) heap.push(rank * OFFSETS + p);
  };
  for (let p = 0; p + 1 < n; p++) offer(p);
  let parts = n;
  while (heap.size > 0) {
    const key = heap.pop();
    const p = key % OFFSETS;
    if (gone[p] || pairRank(p) !== (key - p) / OFFSETS) continue;
    const q = next[p];
    gone[q] = 1;
    next[p] = next[q];
    if (next[p] < n) prev[next[p]] = p;
    parts--;
    if (prev[p] >= 0) offer(prev[p]);
    offer(p);
  }
  return parts;
}

/** Heap keys are rank × OFFSETS + offset: ranks first, then the leftmost. */
const OFFSETS = 2 ** 24;

/** A binary min-heap of numbers. */
class MinHeap {
  #keys = new Float64Array(0);
  size = 0;

  /** Empties the heap, with room for `capacity` keys. */
  reset(capacity: number): void {
    if (this.#keys.length < capacity) this.#keys = new Float64Array(capacity);
    this.size = 0;
  }

  push(key: number): void {
    const keys = this.#keys;
    let i = this.size++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (keys[parent] <= key) break;
      keys[i] = keys[parent];
      i = parent;
    }
    keys[i] = key;
  }

  pop(): number {
    const keys = this.#keys;
    const top = keys[0];
    const last = keys[--this.size];
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= this.size) break;
      if (child + 1 < this.size && keys[child + 1] < keys[child]) child++;
      if (keys[child] >= last) break;
      keys[i] = keys[child];
      i = child;
    }
    keys[i] = last;
    return top;
  }
}

/**
 * {@link heapBytePairCount}'s parts and heap, reused from window to window (up to ~1.6 MB): a
 * window's own were ~0.5 MB each, and a 1 MB run of letters has 64 windows (see partStarts).
 */
let nextPart = new Int32Array(0);
let prevPart = new Int32Array(0);
let goneParts = new Uint8Array(0);
const pairHeap = new MinHeap();

function isAscii(text: string, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (text.charCodeAt(i) > 0x7f) return false;
  return true;
}

const utf8 = new TextEncoder();

/**
 * Bytes as a string of char codes 0–255, so a byte range can be looked up in a {@link SpanTable}
 * (ASCII text is its own byte string).
 */
function byteString(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i += 4096) {
    out += String.fromCharCode.apply(null, bytes.subarray(i, i + 4096) as unknown as number[]);
  }
  return out;
}

/**
 * cl100k's mergeable tokens by their bytes, and each one's rank (its token id, which is also its
 * merge priority). Special tokens (`<|endoftext|>` …) are not among them: a file or a message that
 * holds one is counted as plain text.
 */
const tokenBytes = new SpanTable(1 << 17);
const rankOf = new Int32Array(1 << 17);
// js-tiktoken's form: lines of "label firstRank base64 base64 …", the ranks counting up along a line
for (const line of cl100k.bpe_ranks.split("\n")) {
  const fields = line.split(" ");
  let rank = Number(fields[1]);
  for (let i = 2; i < fields.length; i++, rank++) {
    const bytes = atob(fields[i]); // a string of char codes 0–255, as the table is keyed
    rankOf[tokenBytes.intern(bytes, 0, bytes.length)] = rank;
  }
}

const NO_RANK = 0x7fffffff;

function rankOfBytes(bytes: string, start: number, end: number): number {
  const id = tokenBytes.find(bytes, start, end);
  return id < 0 ? NO_RANK : rankOf[id];
}

/**
 * {@link bytePairCount}'s arrays, reused from piece to piece: a kilobyte or two each, which as new
 * arrays per piece were memory outside V8's heap that piled up between collections (tens of MB on
 * a repository of long distinct words).
 */
let partStarts = new Int32Array(1024);
let pairRanks = new Int32Array(1024);

/**
 * How many tokens byte-pair encoding makes of one piece: repeatedly merge the adjacent pair of
 * parts whose joined bytes have the lowest rank (the leftmost of equals), until no pair is a token.
 */
function bytePairCount(bytes: string, from: number, to: number): number {
  const n = to - from;
  if (n <= 1 || rankOfBytes(bytes, from, to) !== NO_RANK) return Math.min(n, 1);
  // parts are [starts[p], starts[p + 1]); ranks[p] is the rank of parts p and p + 1 joined
  const starts = partStarts = withRoom(partStarts, n);
  const ranks = pairRanks = withRoom(pairRanks, n);
  for (let i = 0; i <= n; i++) starts[i] = from + i;
  ranks[n - 1] = ranks[n] = NO_RANK;
  for (let i = 0; i + 2 <= n; i++) ranks[i] = rankOfBytes(bytes, from + i, from + i + 2);
  let parts = n;
  const pairRank = (p: number) => (p + 2 <= parts ? rankOfBytes(bytes, starts[p], starts[p + 2]) : NO_RANK);
  while (parts > 1) {
    let lowest = -1;
    let lowestRank = NO_RANK;
    for (let p = 0; p < parts - 1; p++) {
      if (ranks[p] < lowestRank) lowestRank = ranks[lowest = p];
    }
    if (lowest < 0) break;
    starts.copyWithin(lowest + 1, lowest + 2, parts + 1);
    ranks.copyWithin(lowest, lowest + 1, parts + 1);
    parts--;
    ranks[lowest] = pairRank(lowest);
    if (lowest > 0) ranks[lowest - 1] = pairRank(lowest - 1);
  }
  return parts;
}

const NL = 10;
const CR = 13;
const SPACE = 32;
const APOSTROPHE = 39;

/** Classes of the pattern: letters (\p{L}), digits (\p{N}), whitespace (\s), the rest. */
const LETTER = 1;
const DIGIT = 2;
const WHITESPACE = 3;
const OTHER = 4;

function classify(char: string): number {
  if (/\p{L}/u.test(char)) return LETTER;
  if (/\p{N}/u.test(char)) return DIGIT;
  return /\s/u.test(char) ? WHITESPACE : OTHER;
}

/** Classes of the UTF-16 code units, filled in as they are met (0: not yet). */
const UNIT_CLASS = new Uint8Array(0x10000);
for (let c = 0; c < 128; c++) UNIT_CLASS[c] = classify(String.fromCharCode(c));

const isHighSurrogate = (c: number) => c >= 0xd800 && c <= 0xdbff;
const isLowSurrogate = (c: number) => c >= 0xdc00 && c <= 0xdfff;

/** 2 for a surrogate pair at `i`, else 1 (a lone surrogate is a code point of its own, as in a `u` regex). */
const widthAt = (text: string, i: number) =>
  isHighSurrogate(text.charCodeAt(i)) && isLowSurrogate(text.charCodeAt(i + 1)) ? 2 : 1;

/** The class of the code point at `i`. */
function classAt(text: string, i: number): number {
  const c = text.charCodeAt(i);
  const known = UNIT_CLASS[c];
  if (known !== 0 && !isHighSurrogate(c)) return known;
  if (widthAt(text, i) === 2) return classify(text.slice(i, i + 2));
  return UNIT_CLASS[c] = classify(text[i]);
}

/** The end of the run of code points of class `kind` from `i`, at most `max` of them. */
function runEnd(text: string, i: number, end: number, kind: number, max = end): number {
  for (let n = 0; i < end && n < max && classAt(text, i) === kind; n++) i += widthAt(text, i);
  return i;
}

/** The contraction suffixes of the pattern's first alternative, lower-cased: 's 'd 'm 't 'll 've 're. */
function contractionEnd(text: string, i: number, end: number): number {
  if (i + 1 >= end) return -1;
  const a = text.charCodeAt(i + 1) | 0x20;
  if (a === 0x73 || a === 0x64 || a === 0x6d || a === 0x74) return i + 2; // s d m t
  if (i + 2 >= end) return -1;
  const b = text.charCodeAt(i + 2) | 0x20;
  if ((a === 0x6c && b === 0x6c) || (a === 0x76 && b === 0x65) || (a === 0x72 && b === 0x65)) return i + 3;
  return -1;
}

/**
 * The end of the piece that starts at `i`, following the pattern's alternatives in order:
 * `'(?:[sS]|[dD]|[mM]|[tT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 * ?[^\s\p{L}\p{N}]+[\r\n]*|\s+$|\s*[\r\n]|\s+(?!\S)|\s`.
 */
function pieceEnd(text: string, i: number, end: number): number {
  const c = text.charCodeAt(i);
  const kind = classAt(text, i);
  if (c === APOSTROPHE) {
    const j = contractionEnd(text, i, end);
    if (j > 0) return j;
  }
  if (kind === LETTER) return runEnd(text, i, end, LETTER);
  const next = i + widthAt(text, i);
  if (kind !== DIGIT && c !== NL && c !== CR && next < end && classAt(text, next) === LETTER) {
    return runEnd(text, next, end, LETTER);
  }
  if (kind === DIGIT) return runEnd(text, i, end, DIGIT, 3);
  const k = c === SPACE ? i + 1 : i;
  if (k < end && classAt(text, k) === OTHER) {
    let j = runEnd(text, k, end, OTHER);
    while (j < end && (text.charCodeAt(j) === NL || text.charCodeAt(j) === CR)) j++;
    return j;
  }
  // whitespace (one code unit each): the run, then the pattern's four whitespace alternatives in order
  let j = i + 1;
  let lastNewline = c === NL || c === CR ? i : -1;
  for (; j < end && classAt(text, j) === WHITESPACE; j++) {
    const d = text.charCodeAt(j);
    if (d === NL || d === CR) lastNewline = j;
  }
  if (j === end) return end;
  if (lastNewline >= 0) return lastNewline + 1;
  return j - i >= 2 ? j - 1 : i + 1;
}
