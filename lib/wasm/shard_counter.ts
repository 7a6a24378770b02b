/**
 * AssemblyScript, compiled to `shard_counter.wasm` by `deno task build:wasm` (scripts/build_wasm.ts);
 * not imported by Deno. A retrieval index shard's words counted and its postings written
 * (lib/retrieval.ts, lib/index_shard.ts), over UTF-8 bytes: what the index's JavaScript did per
 * word and per posting, in about half the time (docs/PERFORMANCE.md).
 *
 * Words and their parts are found as lib/retrieval.ts's `forEachToken` finds them (word characters
 * are ASCII, so a UTF-8 byte is one exactly when a UTF-16 code unit is); a raw token's term is it
 * lower-cased, and none when it is shorter than 2 or longer than 40. Per raw token and per term it
 * keeps the chunk field it was last seen in, so a field's distinct raw tokens (MiniSearch's field
 * length) and each term's count per field come out of one pass, as entries: term id, chunk field
 * mark, count. `encode()` then sorts the terms and writes the postings from the entries.
 *
 * Memory: arrays that grow by doubling as tokens, terms and entries arrive (`heap.realloc`, the
 * runtime's TLSF allocator); `clear()` keeps them for the next shard. JavaScript writes a field's
 * bytes at `input(n)` and then calls `addField`.
 */
import { grown, i32At, setI32, SpanTable } from "./spans";

/**
 * The raw tokens; per raw token id, its term id (-1: none), the last mark it was seen in, and the
 * span of {@link partIds} that lists its parts' ids when it is a word (start {@link PARTS_UNKNOWN}:
 * not worked out yet; {@link PARTS_EACH_TIME}: too many to list).
 */
const tokens = new SpanTable(1024);
let tokenTerm: usize = 0;
let tokenMark: usize = 0;
let tokenPartsStart: usize = 0;
let tokenPartsEnd: usize = 0;
let tokenRoom: i32 = 0;
/**
 * The ids of words' parts, a word's one after another, for each distinct word of the shard that
 * has at most {@link MAX_LISTED_PARTS}: at most 8 × 65,536 ids, 2 MB. A word with more (a run of
 * `_` is all empty parts) is split again each time it occurs: listed, a crafted shard of such
 * words took 15 MB more.
 */
const MAX_LISTED_PARTS = 8;
const PARTS_UNKNOWN = -1;
const PARTS_EACH_TIME = -2;
let partIds: usize = 0;
let partIdRoom: i32 = 0;
let partIdCount: i32 = 0;

/** The terms; per term id, the last mark it was seen in and its count's entry there. */
const terms = new SpanTable(1024);
let termMark: usize = 0;
let termEntry: usize = 0;
let termRoom: i32 = 0;

/** Per term and chunk field it occurs in: term id, mark, count. */
let entries: usize = 0;
let entryRoom: i32 = 0;
let entryCount: i32 = 0;

let inputBytes: usize = 0;
let inputRoom: i32 = 0;
let partBounds: usize = 0;
let partRoom: i32 = 0;
/** A term being looked up: a raw token lower-cased. */
const lowered = heap.alloc(40);
let distinct: i32 = 0;

/** Character classes of [A-Za-z0-9_], as bits; 0 for every other byte. */
const UNDERSCORE: u32 = 1;
const UPPER: u32 = 2;
const LOWER: u32 = 4;
const DIGIT: u32 = 8;
const classes = new StaticArray<u8>(256);

export function init(seedHigh: u32, seedLow: u32): void {
  const seed = (<u64> seedHigh << 32) | <u64> seedLow;
  tokens.seed = seed;
  terms.seed = seed;
  for (let c: u32 = 0; c < 256; c++) {
    const kind = c - 97 < 26 ? LOWER : c - 65 < 26 ? UPPER : c - 48 < 10 ? DIGIT : c == 95 ? UNDERSCORE : 0;
    unchecked(classes[c] = <u8> kind);
  }
}

/** Where to write `bytes` bytes of input, what was there kept; valid until the next call. */
export function input(bytes: i32): usize {
  if (inputRoom < bytes) inputBytes = grown(inputBytes, <usize> (inputRoom = max(bytes, 64 * 1024)));
  return inputBytes;
}

export function tokenCount(): i32 {
  return tokens.size;
}

export function termCount(): i32 {
  return terms.size;
}

/** Each term's bytes, one after another: term `i` ends at `termEnds()[i]`. */
export function termBytes(): usize {
  return terms.pool;
}

export function termEnds(): usize {
  return terms.ends;
}

export function entriesAt(): usize {
  return entries;
}

export function entriesLength(): i32 {
  return entryCount * 3;
}

/** Forgets every token and term (ids start again at 0); keeps the memory. */
export function clear(): void {
  memory.fill(tokenMark, 0, <usize> tokens.size << 2);
  memory.fill(termMark, 0, <usize> terms.size << 2);
  tokens.clear();
  terms.clear();
  entryCount = 0;
  partIdCount = 0;
}

/**
 * Counts the words of `input[0, length)` as the field `mark` (1 + chunk id × fields + field id);
 * returns how many distinct raw tokens it has.
 */
export function addField(mark: i32, length: i32): i32 {
  distinct = 0;
  const end = inputBytes + <usize> length;
  for (let i = inputBytes; i < end;) {
    while (i < end && classOf(i) == 0) i++;
    if (i == end) break;
    let j = i + 1;
    while (j < end && classOf(j) != 0) j++;
    const word = tokenId(i, j);
    visit(word, mark);
    // a word seen again has its parts' ids at hand: they are found and interned once per shard
    if (i32At(tokenPartsStart, word) == PARTS_UNKNOWN) listParts(word, i, j);
    const first = i32At(tokenPartsStart, word);
    if (first == PARTS_EACH_TIME) {
      const bounds = splitParts(i, j);
      for (let p = 0; p < bounds; p += 2) visit(partAt(p), mark);
    } else {
      const last = i32At(tokenPartsEnd, word);
      for (let p = first; p < last; p++) visit(i32At(partIds, p), mark);
    }
    i = j;
  }
  return distinct;
}

function classOf(at: usize): u32 {
  return <u32> unchecked(classes[load<u8>(at)]);
}

/** Lists the ids of the parts of `word`, `[start, end)`, or marks it to be split each time. */
function listParts(word: i32, start: usize, end: usize): void {
  const bounds = splitParts(start, end);
  if (bounds > 2 * MAX_LISTED_PARTS) {
    setI32(tokenPartsStart, word, PARTS_EACH_TIME);
    return;
  }
  const first = partIdCount;
  for (let p = 0; p < bounds; p += 2) {
    const part = partAt(p);
    if (partIdRoom == partIdCount) {
      partIds = grown(partIds, <usize> (partIdRoom = max(1024, partIdRoom * 2)) << 2);
    }
    setI32(partIds, partIdCount++, part);
  }
  setI32(tokenPartsStart, word, first);
  setI32(tokenPartsEnd, word, partIdCount);
}

/** The id of the part whose bounds are at `p` in {@link partBounds}, interned when new. */
function partAt(p: i32): i32 {
  return tokenId(<usize> i32At(partBounds, p), <usize> i32At(partBounds, p + 1));
}

/**
 * Puts the bounds of the parts of the word `[start, end)` in {@link partBounds}, when it splits
 * into more than one (see forEachToken); returns how many bounds (two a part), 0 when it does not.
 */
function splitParts(start: usize, end: usize): i32 {
  let splits = false;
  for (let k = start + 1; k < end && !splits; k++) splits = (classOf(k) & (UNDERSCORE | UPPER)) != 0;
  if (!splits && classOf(start) != UNDERSCORE) return 0;
  let bounds = 0;
  let partStart = start;
  for (let k = start; k < end; k++) {
    const here = classOf(k);
    if (here == UNDERSCORE) {
      bounds = addPart(bounds, partStart, k);
      partStart = k + 1;
    } else if (here == UPPER && k > partStart) {
      const before = classOf(k - 1);
      if ((before & (LOWER | DIGIT)) != 0 || (before == UPPER && k + 1 < end && classOf(k + 1) == LOWER)) {
        bounds = addPart(bounds, partStart, k);
        partStart = k;
      }
    }
  }
  return bounds == 0 ? 0 : addPart(bounds, partStart, end);
}

function addPart(at: i32, from: usize, to: usize): i32 {
  if (partRoom < at + 2) partBounds = grown(partBounds, (partRoom = max(1024, partRoom * 2)) << 2);
  setI32(partBounds, at, <i32> from);
  setI32(partBounds, at + 1, <i32> to);
  return at + 2;
}

function visit(token: i32, mark: i32): void {
  if (i32At(tokenMark, token) != mark) {
    setI32(tokenMark, token, mark);
    distinct++;
  }
  const term = i32At(tokenTerm, token);
  if (term < 0) return;
  if (i32At(termMark, term) == mark) {
    const at = i32At(termEntry, term);
    setI32(entries, at, i32At(entries, at) + 1);
    return;
  }
  if (entryRoom < (entryCount + 1) * 3) {
    entries = grown(entries, <usize> (entryRoom = max(3072, entryRoom * 2)) << 2);
  }
  const at = entryCount++ * 3;
  setI32(entries, at, term);
  setI32(entries, at + 1, mark);
  setI32(entries, at + 2, 1);
  setI32(termMark, term, mark);
  setI32(termEntry, term, at + 2);
}

function tokenId(from: usize, to: usize): i32 {
  const before = tokens.size;
  const id = tokens.intern(from, to);
  if (id < before) return id;
  if (id == tokenRoom) {
    const room = max(1024, tokenRoom * 2);
    tokenTerm = grown(tokenTerm, <usize> room << 2);
    tokenPartsStart = grown(tokenPartsStart, <usize> room << 2);
    tokenPartsEnd = grown(tokenPartsEnd, <usize> room << 2);
    tokenMark = zeroedGrown(tokenMark, tokenRoom, room);
    tokenRoom = room;
  }
  const length = <i32> (to - from);
  setI32(tokenTerm, id, length < 2 || length > 40 ? -1 : termId(from, length));
  setI32(tokenPartsStart, id, PARTS_UNKNOWN);
  return id;
}

/** The id of the raw token's term (it lower-cased), added when new. */
function termId(from: usize, length: i32): i32 {
  for (let i = 0; i < length; i++) {
    const c = <u32> load<u8>(from + i);
    store<u8>(lowered + i, c - 65 < 26 ? c + 32 : c);
  }
  const before = terms.size;
  const id = terms.intern(lowered, lowered + <usize> length);
  if (id < before) return id;
  if (id == termRoom) {
    const room = max(1024, termRoom * 2);
    termEntry = grown(termEntry, <usize> room << 2);
    termMark = zeroedGrown(termMark, termRoom, room);
    termRoom = room;
  }
  return id;
}

/** A block of `from` 32-bit numbers grown to `to`, the new ones zeros. */
function zeroedGrown(block: usize, from: i32, to: i32): usize {
  const bigger = grown(block, <usize> to << 2);
  memory.fill(bigger + (<usize> from << 2), 0, <usize> (to - from) << 2);
  return bigger;
}

/**
 * {@link encode}'s work, kept for the next shard: the term ids in sorted order, each one's rank,
 * sort keys and scratch; per term and field (a slot) the byte length of its postings, its last
 * chunk, and where its next posting goes; and the postings written.
 */
let termOrder: usize = 0;
let termRank: usize = 0;
let termKeys: usize = 0;
let sortScratch: usize = 0;
let sortRoom: i32 = 0;
let slotLengths: usize = 0;
let slotLast: usize = 0;
let slotNext: usize = 0;
let slotRoom: i32 = 0;
let postings: usize = 0;
let postingsRoom: i32 = 0;
let postingsLength: i32 = 0;

/** The term ids in the order of their bytes (ASCII: the order of JavaScript's `<` on the terms). */
export function sortedTerms(): usize {
  return termOrder;
}

export function postingsAt(): usize {
  return postings;
}

export function postingsBytes(): i32 {
  return postingsLength;
}

/**
 * Sorts the terms and writes the shard's postings as lib/index_shard.ts lays them out: for each
 * term (sorted) and field, the byte length of its postings; then the postings themselves, for
 * each chunk holding the term in that field the chunk id's step from the previous one and the
 * term's count there; all unsigned LEB128 varints. Returns their length (at {@link postingsAt}).
 */
export function encode(fields: i32): i32 {
  const count = terms.size;
  sortTerms(count);
  for (let r = 0; r < count; r++) setI32(termRank, i32At(termOrder, r), r);
  const slots = count * fields;
  if (slotRoom < slots) {
    slotRoom = max(slots, slotRoom * 2);
    slotLengths = grown(slotLengths, <usize> slotRoom << 2);
    slotLast = grown(slotLast, <usize> slotRoom << 2);
    slotNext = grown(slotNext, <usize> slotRoom << 2);
  }
  memory.fill(slotLengths, 0, <usize> slots << 2);
  memory.fill(slotLast, 0, <usize> slots << 2);
  const ends = entryCount * 3;
  for (let at = 0; at < ends; at += 3) {
    const slot = slotOfEntry(at, fields);
    const chunk = (i32At(entries, at + 1) - 1) / fields;
    setI32(
      slotLengths,
      slot,
      i32At(slotLengths, slot) + varintSize(chunk - i32At(slotLast, slot)) +
        varintSize(i32At(entries, at + 2)),
    );
    setI32(slotLast, slot, chunk);
  }
  let lengthBytes = 0;
  let bodyBytes = 0;
  for (let slot = 0; slot < slots; slot++) {
    const length = i32At(slotLengths, slot);
    lengthBytes += varintSize(length);
    bodyBytes += length;
  }
  postingsLength = lengthBytes + bodyBytes;
  if (postingsRoom < postingsLength) {
    postings = grown(postings, <usize> (postingsRoom = max(postingsLength, postingsRoom * 2)));
  }
  let at = postings;
  let body = postings + <usize> lengthBytes;
  for (let slot = 0; slot < slots; slot++) {
    const length = i32At(slotLengths, slot);
    at = writeVarint(at, length);
    setI32(slotNext, slot, <i32> body);
    body += <usize> length;
  }
  memory.fill(slotLast, 0, <usize> slots << 2);
  for (let e = 0; e < ends; e += 3) {
    const slot = slotOfEntry(e, fields);
    const chunk = (i32At(entries, e + 1) - 1) / fields;
    const next = writeVarint(
      writeVarint(<usize> i32At(slotNext, slot), chunk - i32At(slotLast, slot)),
      i32At(entries, e + 2),
    );
    setI32(slotNext, slot, <i32> next);
    setI32(slotLast, slot, chunk);
  }
  return postingsLength;
}

/** The posting slot of the entry at `at`: its term's rank × fields + its field. */
function slotOfEntry(at: i32, fields: i32): i32 {
  return i32At(termRank, i32At(entries, at)) * fields + (i32At(entries, at + 1) - 1) % fields;
}

function varintSize(n: i32): i32 {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5;
}

function writeVarint(at: usize, n: i32): usize {
  let rest = <u32> n;
  while (rest >= 0x80) {
    store<u8>(at++, (rest & 0x7f) | 0x80);
    rest >>= 7;
  }
  store<u8>(at++, rest);
  return at;
}

/**
 * Fills {@link termOrder} with the term ids sorted by their bytes: a bottom-up merge sort that
 * compares the terms' first eight bytes as one number (big-endian, so in byte order), and the
 * rest only between terms that share them.
 */
function sortTerms(count: i32): void {
  if (sortRoom < count) {
    sortRoom = max(count, sortRoom * 2);
    termOrder = grown(termOrder, <usize> sortRoom << 2);
    termRank = grown(termRank, <usize> sortRoom << 2);
    sortScratch = grown(sortScratch, <usize> sortRoom << 2);
    termKeys = grown(termKeys, <usize> sortRoom << 3);
  }
  for (let id = 0; id < count; id++) {
    setI32(termOrder, id, id);
    store<u64>(termKeys + (<usize> id << 3), leadingBytes(id));
  }
  let from = termOrder;
  let to = sortScratch;
  for (let width = 1; width < count; width <<= 1) {
    for (let lo = 0; lo < count; lo += 2 * width) {
      merge(from, to, lo, min(lo + width, count), min(lo + 2 * width, count));
    }
    const swap = from;
    from = to;
    to = swap;
  }
  if (from != termOrder) memory.copy(termOrder, from, <usize> count << 2);
}

function merge(from: usize, to: usize, lo: i32, mid: i32, hi: i32): void {
  let a = lo;
  let b = mid;
  for (let out = lo; out < hi; out++) {
    if (b >= hi || (a < mid && !termBefore(i32At(from, b), i32At(from, a)))) {
      setI32(to, out, i32At(from, a++));
    } else setI32(to, out, i32At(from, b++));
  }
}

/** A term's first eight bytes as a big-endian number (zeros past its end: no term holds a zero byte). */
function leadingBytes(id: i32): u64 {
  const start = terms.pool + <usize> terms.start(id);
  const length = min(terms.length(id), 8);
  let key: u64 = 0;
  for (let i = 0; i < 8; i++) key = (key << 8) | (i < length ? <u64> load<u8>(start + i) : 0);
  return key;
}

function termBefore(x: i32, y: i32): bool {
  const kx = load<u64>(termKeys + (<usize> x << 3));
  const ky = load<u64>(termKeys + (<usize> y << 3));
  if (kx != ky) return kx < ky;
  const lx = terms.length(x);
  const ly = terms.length(y);
  const px = terms.pool + <usize> terms.start(x);
  const py = terms.pool + <usize> terms.start(y);
  for (let i = 8; i < min(lx, ly); i++) {
    const cx = load<u8>(px + i);
    const cy = load<u8>(py + i);
    if (cx != cy) return cx < cy;
  }
  return lx < ly;
}
