/**
 * AssemblyScript, compiled to `shard_counter.wasm` by `deno task build:wasm` (scripts/build_wasm.ts);
 * not imported by Deno. The counting half of a retrieval index shard (lib/retrieval.ts), over UTF-8
 * bytes: what the index's JavaScript did per word, in about half the time (docs/PERFORMANCE.md).
 *
 * Words and their parts are found as lib/retrieval.ts's `forEachToken` finds them (word characters
 * are ASCII, so a UTF-8 byte is one exactly when a UTF-16 code unit is); a raw token's term is it
 * lower-cased, and none when it is shorter than 2 or longer than 40. Per raw token and per term it
 * keeps the chunk field it was last seen in, so a field's distinct raw tokens (MiniSearch's field
 * length) and each term's count per field come out of one pass, as entries: term id, chunk field
 * mark, count. Ids are given in the order first seen, as the JavaScript gave them.
 *
 * Memory: arrays that grow by doubling as tokens, terms and entries arrive (`heap.realloc`, the
 * runtime's TLSF allocator); `clear()` keeps them for the next shard. JavaScript writes a field's
 * bytes at `input(n)` and then calls `addField`.
 */

/** Per raw token id: hash, start in the token pool, length, term id (-1: none), last mark. */
let tokenHash: usize = 0;
let tokenStart: usize = 0;
let tokenLength: usize = 0;
let tokenTerm: usize = 0;
let tokenMark: usize = 0;
let tokenRoom: i32 = 0;
/** Open addressing, linear probing, at most half full: token id + 1; 0 is empty. */
let tokenSlots: usize = 0;
let tokenSlotCount: i32 = 0;
let tokenPool: usize = 0;
let tokenPoolRoom: i32 = 0;
let tokenCount: i32 = 0;
let tokenPoolUsed: i32 = 0;

/** Per term id: hash, end in the term pool (terms lie one after another), last mark, its count's entry. */
let termHash: usize = 0;
let termEnd: usize = 0;
let termMark: usize = 0;
let termEntry: usize = 0;
let termRoom: i32 = 0;
let termSlots: usize = 0;
let termSlotCount: i32 = 0;
let termPool: usize = 0;
let termPoolRoom: i32 = 0;
let termCount: i32 = 0;
let termPoolUsed: i32 = 0;

/** Per term and chunk field it occurs in: term id, mark, count. */
let entries: usize = 0;
let entryRoom: i32 = 0;
let entryCount: i32 = 0;

let inputBytes: usize = 0;
let inputRoom: i32 = 0;
let partBounds: usize = 0;
let partRoom: i32 = 0;
let seed: u32 = 0;
let distinct: i32 = 0;

/** Character classes of [A-Za-z0-9_], as bits; 0 for every other byte. */
const UNDERSCORE: u32 = 1;
const UPPER: u32 = 2;
const LOWER: u32 = 4;
const DIGIT: u32 = 8;
const classes = new StaticArray<u8>(256);

export function init(hashSeed: u32): void {
  seed = hashSeed;
  for (let c: u32 = 0; c < 256; c++) {
    const kind = c - 97 < 26 ? LOWER : c - 65 < 26 ? UPPER : c - 48 < 10 ? DIGIT : c == 95 ? UNDERSCORE : 0;
    unchecked(classes[c] = <u8> kind);
  }
  tokenSlots = zeroed(tokenSlotCount = 1024);
  termSlots = zeroed(termSlotCount = 1024);
}

/** Where to write `bytes` bytes of input; valid until the next call. */
export function input(bytes: i32): usize {
  if (inputRoom < bytes) {
    if (inputBytes != 0) heap.free(inputBytes);
    inputBytes = heap.alloc(<usize> (inputRoom = max(bytes, 64 * 1024)));
  }
  return inputBytes;
}

export function tokens(): i32 {
  return tokenCount;
}

export function terms(): i32 {
  return termCount;
}

/** Each term's bytes, one after another: term `i` ends at `termEnds()[i]`. */
export function termBytes(): usize {
  return termPool;
}

export function termEnds(): usize {
  return termEnd;
}

export function entriesAt(): usize {
  return entries;
}

export function entriesLength(): i32 {
  return entryCount * 3;
}

/** Forgets every token and term (ids start again at 0); keeps the memory. */
export function clear(): void {
  memory.fill(tokenSlots, 0, <usize> tokenSlotCount << 2);
  memory.fill(termSlots, 0, <usize> termSlotCount << 2);
  memory.fill(tokenMark, 0, <usize> tokenCount << 2);
  memory.fill(termMark, 0, <usize> termCount << 2);
  tokenCount = 0;
  tokenPoolUsed = 0;
  termCount = 0;
  termPoolUsed = 0;
  entryCount = 0;
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
    let j = i;
    let splits = false;
    let hash = seed;
    for (; j < end; j++) {
      const c = <u32> load<u8>(j);
      const k = <u32> unchecked(classes[c]);
      if (k == 0) break;
      if (k == UNDERSCORE || (k == UPPER && j > i)) splits = true;
      hash = hashStep(hash, c);
    }
    visit(i, j, hash, mark);
    if (splits) visitParts(i, j, mark);
    i = j;
  }
  return distinct;
}

function classOf(at: usize): u32 {
  return <u32> unchecked(classes[load<u8>(at)]);
}

function i32At(array: usize, index: i32): i32 {
  return load<i32>(array + (<usize> index << 2));
}

function setI32(array: usize, index: i32, value: i32): void {
  store<i32>(array + (<usize> index << 2), value);
}

/** FNV-1a, each step's high bits folded into its low ones (as lib/span_table.ts). */
function hashStep(hash: u32, code: u32): u32 {
  const h = (hash ^ code) * 0x01000193;
  return h ^ (h >> 15);
}

function spanHash(from: usize, to: usize): u32 {
  let hash = seed;
  for (let at = from; at < to; at++) hash = hashStep(hash, load<u8>(at));
  return hash;
}

function slotOf(hash: u32, mask: i32): i32 {
  const h = (hash ^ (hash >> 16)) * 0x45d9f3b;
  return <i32> (h ^ (h >> 16)) & mask;
}

function sameBytes(a: usize, b: usize, n: i32): bool {
  let i = 0;
  for (; i + 8 <= n; i += 8) if (load<u64>(a + i) != load<u64>(b + i)) return false;
  for (; i < n; i++) if (load<u8>(a + i) != load<u8>(b + i)) return false;
  return true;
}

/** The parts of the word `[start, end)`, when it splits into more than one (see forEachToken). */
function visitParts(start: usize, end: usize, mark: i32): void {
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
  if (bounds == 0) return;
  bounds = addPart(bounds, partStart, end);
  for (let p = 0; p < bounds; p += 2) {
    const from = <usize> i32At(partBounds, p);
    const to = <usize> i32At(partBounds, p + 1);
    visit(from, to, spanHash(from, to), mark);
  }
}

function addPart(at: i32, from: usize, to: usize): i32 {
  if (partRoom < at + 2) partBounds = grown(partBounds, (partRoom = max(1024, partRoom * 2)) << 2);
  setI32(partBounds, at, <i32> from);
  setI32(partBounds, at + 1, <i32> to);
  return at + 2;
}

function visit(from: usize, to: usize, hash: u32, mark: i32): void {
  const token = tokenId(from, <i32> (to - from), hash);
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

function tokenId(from: usize, length: i32, hash: u32): i32 {
  const mask = tokenSlotCount - 1;
  let slot = slotOf(hash, mask);
  for (;; slot = (slot + 1) & mask) {
    const entry = i32At(tokenSlots, slot);
    if (entry == 0) break;
    const id = entry - 1;
    if (
      load<u32>(tokenHash + (<usize> id << 2)) == hash && i32At(tokenLength, id) == length &&
      sameBytes(tokenPool + <usize> i32At(tokenStart, id), from, length)
    ) return id;
  }
  if (tokenCount == tokenRoom) growTokens();
  if (tokenPoolRoom < tokenPoolUsed + length) {
    tokenPool = grown(
      tokenPool,
      <usize> (tokenPoolRoom = max(tokenPoolUsed + length, max(64 * 1024, tokenPoolRoom * 2))),
    );
  }
  const id = tokenCount++;
  setI32(tokenSlots, slot, id + 1);
  store<u32>(tokenHash + (<usize> id << 2), hash);
  setI32(tokenStart, id, tokenPoolUsed);
  setI32(tokenLength, id, length);
  memory.copy(tokenPool + <usize> tokenPoolUsed, from, length);
  tokenPoolUsed += length;
  setI32(tokenTerm, id, length < 2 || length > 40 ? -1 : termId(from, length));
  if (tokenCount * 2 > tokenSlotCount) {
    tokenSlots = rehashed(tokenSlots, tokenSlotCount, tokenHash, tokenCount);
    tokenSlotCount *= 2;
  }
  return id;
}

/** The id of the raw token's term (it lower-cased), added when new. */
function termId(from: usize, length: i32): i32 {
  if (termPoolRoom < termPoolUsed + length) {
    termPool = grown(
      termPool,
      <usize> (termPoolRoom = max(termPoolUsed + length, max(64 * 1024, termPoolRoom * 2))),
    );
  }
  const at = termPool + <usize> termPoolUsed;
  let hash = seed;
  for (let i = 0; i < length; i++) {
    let c = <u32> load<u8>(from + i);
    if (c - 65 < 26) c += 32;
    store<u8>(at + i, c);
    hash = hashStep(hash, c);
  }
  const mask = termSlotCount - 1;
  let slot = slotOf(hash, mask);
  for (;; slot = (slot + 1) & mask) {
    const entry = i32At(termSlots, slot);
    if (entry == 0) break;
    const id = entry - 1;
    const start = id == 0 ? 0 : i32At(termEnd, id - 1);
    if (
      load<u32>(termHash + (<usize> id << 2)) == hash && i32At(termEnd, id) - start == length &&
      sameBytes(termPool + <usize> start, at, length)
    ) return id;
  }
  if (termCount == termRoom) growTerms();
  const id = termCount++;
  setI32(termSlots, slot, id + 1);
  store<u32>(termHash + (<usize> id << 2), hash);
  termPoolUsed += length;
  setI32(termEnd, id, termPoolUsed);
  if (termCount * 2 > termSlotCount) {
    termSlots = rehashed(termSlots, termSlotCount, termHash, termCount);
    termSlotCount *= 2;
  }
  return id;
}

function growTokens(): void {
  const room = max(1024, tokenRoom * 2);
  const bytes = <usize> room << 2;
  tokenHash = grown(tokenHash, bytes);
  tokenStart = grown(tokenStart, bytes);
  tokenLength = grown(tokenLength, bytes);
  tokenTerm = grown(tokenTerm, bytes);
  tokenMark = grown(tokenMark, bytes);
  memory.fill(tokenMark + (<usize> tokenRoom << 2), 0, <usize> (room - tokenRoom) << 2);
  tokenRoom = room;
}

function growTerms(): void {
  const room = max(1024, termRoom * 2);
  const bytes = <usize> room << 2;
  termHash = grown(termHash, bytes);
  termEnd = grown(termEnd, bytes);
  termEntry = grown(termEntry, bytes);
  termMark = grown(termMark, bytes);
  memory.fill(termMark + (<usize> termRoom << 2), 0, <usize> (room - termRoom) << 2);
  termRoom = room;
}

/** `block` moved to one of `bytes` bytes, its contents kept (a null block: a new one). */
function grown(block: usize, bytes: usize): usize {
  return block == 0 ? heap.alloc(bytes) : heap.realloc(block, bytes);
}

function zeroed(count: i32): usize {
  const block = heap.alloc(<usize> count << 2);
  memory.fill(block, 0, <usize> count << 2);
  return block;
}

/** A table of twice as many slots holding ids `0 … count - 1`, placed by their hashes; frees the old one. */
function rehashed(slots: usize, slotCount: i32, hashes: usize, count: i32): usize {
  heap.free(slots);
  const table = zeroed(slotCount * 2);
  const mask = slotCount * 2 - 1;
  for (let id = 0; id < count; id++) {
    let slot = slotOf(load<u32>(hashes + (<usize> id << 2)), mask);
    while (i32At(table, slot) != 0) slot = (slot + 1) & mask;
    setI32(table, slot, id + 1);
  }
  return table;
}
