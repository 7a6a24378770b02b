/**
 * AssemblyScript shared by the modules of this folder (compiled into each of them; not imported by
 * Deno): blocks of 32-bit integers in the runtime's heap, and a hash table of byte strings.
 */

export function i32At(block: usize, index: i32): i32 {
  return load<i32>(block + (<usize> index << 2));
}

export function setI32(block: usize, index: i32, value: i32): void {
  store<i32>(block + (<usize> index << 2), value);
}

/** `block` moved to one of `bytes` bytes, its contents kept (a null block: a new one). */
export function grown(block: usize, bytes: usize): usize {
  return block == 0 ? heap.alloc(bytes) : heap.realloc(block, bytes);
}

/** A block of `count` 32-bit zeros. */
export function zeroed(count: i32): usize {
  const block = heap.alloc(<usize> count << 2);
  memory.fill(block, 0, <usize> count << 2);
  return block;
}

/**
 * The bytes `[from, from + n)`, 1 ≤ n ≤ 8, as one number: two loads that may overlap, so nothing
 * past the span is read. Distinct spans of one length make distinct numbers.
 */
export function bytesKey(from: usize, n: usize): u64 {
  if (n >= 4) return (<u64> load<u32>(from) << 32) | <u64> load<u32>(from + n - 4);
  if (n >= 2) return (<u64> load<u16>(from) << 16) | <u64> load<u16>(from + n - 2);
  return <u64> load<u8>(from);
}

/** A bijection of 64-bit numbers that spreads every bit over all of them. */
export function mix(h: u64): u64 {
  h = (h ^ (h >> 32)) * 0xd6e8feb86659fd93;
  return h ^ (h >> 32);
}

/**
 * A span's hash, eight bytes at a time (a hash of one byte at a time waits on a multiply per byte),
 * from a seed that is random per instance. From a fixed seed anyone could craft a file of
 * thousands of words that share a slot, and every lookup of them would walk them all: 32,768 such
 * words took a table with a public hash 985 ms to intern instead of 9 ms, and more cost
 * quadratically more (docs/PERFORMANCE.md). Hashes live only in memory: nothing stored depends on the seed.
 */
function spanHash(seed: u64, from: usize, to: usize): u32 {
  let h = seed ^ (<u64> (to - from) * 0x9e3779b97f4a7c15);
  let at = from;
  for (; at + 8 <= to; at += 8) h = mix(h ^ load<u64>(at));
  if (at < to) h = mix(h ^ bytesKey(at, to - at));
  return <u32> h;
}

function sameBytes(a: usize, b: usize, n: i32): bool {
  let i = 0;
  for (; i + 8 <= n; i += 8) if (load<u64>(a + i) != load<u64>(b + i)) return false;
  for (; i < n; i++) if (load<u8>(a + i) != load<u8>(b + i)) return false;
  return true;
}

/**
 * A set of byte strings, each given the next id (0, 1, 2 …) as it is added (a key is new when its
 * id is the size before); callers keep what they know of a key in blocks of their own, indexed by id. The keys' bytes lie one after another
 * in `pool`, in the order added: key `id` ends at `ends[id]`. Open addressing, linear probing, at
 * most half full.
 */
export class SpanTable {
  size: i32 = 0;
  pool: usize = 0;
  poolUsed: i32 = 0;
  ends: usize = 0;
  seed: u64 = 0;
  private poolRoom: i32 = 0;
  private hashes: usize = 0;
  private room: i32 = 0;
  /** Per slot: key id + 1; 0 is empty. */
  private slots: usize;
  private slotCount: i32;
  /** Where the last lookUp stopped: the key's slot, or the empty one a new key takes. */
  private slot: i32 = 0;

  /** `keys`: how many keys to make room for before the table grows. */
  constructor(keys: i32) {
    this.slotCount = 2;
    while (this.slotCount < keys * 2) this.slotCount <<= 1;
    this.slots = zeroed(this.slotCount);
  }

  /** The id of the key `[from, to)`, or -1. */
  find(from: usize, to: usize): i32 {
    return this.lookUp(from, <i32> (to - from), spanHash(this.seed, from, to));
  }

  /** The id of the key `[from, to)`, added when new. */
  intern(from: usize, to: usize): i32 {
    const length = <i32> (to - from);
    const hash = spanHash(this.seed, from, to);
    const id = this.lookUp(from, length, hash);
    return id >= 0 ? id : this.add(from, length, hash);
  }

  private lookUp(from: usize, length: i32, hash: u32): i32 {
    const mask = this.slotCount - 1;
    let slot = <i32> hash & mask;
    for (;; slot = (slot + 1) & mask) {
      const entry = i32At(this.slots, slot);
      if (entry == 0) break;
      const id = entry - 1;
      if (
        load<u32>(this.hashes + (<usize> id << 2)) == hash && this.length(id) == length &&
        sameBytes(this.pool + <usize> this.start(id), from, length)
      ) {
        this.slot = slot;
        return id;
      }
    }
    this.slot = slot;
    return -1;
  }

  /** Makes room for `keys` keys of `bytes` bytes in all, so that adding them moves no memory. */
  reserve(keys: i32, bytes: i32): void {
    if (this.room < keys) {
      this.room = keys;
      this.hashes = grown(this.hashes, <usize> keys << 2);
      this.ends = grown(this.ends, <usize> keys << 2);
    }
    if (this.poolRoom < bytes) this.pool = grown(this.pool, <usize> (this.poolRoom = bytes));
  }

  /** Adds the key that the last lookUp did not find; returns its id. */
  private add(from: usize, length: i32, hash: u32): i32 {
    if (this.size == this.room) {
      this.room = max(1024, this.room * 2);
      this.hashes = grown(this.hashes, <usize> this.room << 2);
      this.ends = grown(this.ends, <usize> this.room << 2);
    }
    if (this.poolRoom < this.poolUsed + length) {
      this.poolRoom = max(this.poolUsed + length, max(64 * 1024, this.poolRoom * 2));
      this.pool = grown(this.pool, <usize> this.poolRoom);
    }
    const id = this.size++;
    memory.copy(this.pool + <usize> this.poolUsed, from, length);
    this.poolUsed += length;
    setI32(this.slots, this.slot, id + 1);
    store<u32>(this.hashes + (<usize> id << 2), hash);
    setI32(this.ends, id, this.poolUsed);
    if (this.size * 2 > this.slotCount) this.rehash();
    return id;
  }

  start(id: i32): i32 {
    return id == 0 ? 0 : i32At(this.ends, id - 1);
  }

  length(id: i32): i32 {
    return i32At(this.ends, id) - this.start(id);
  }

  /** Forgets every key (ids start again at 0); keeps the memory. */
  clear(): void {
    memory.fill(this.slots, 0, <usize> this.slotCount << 2);
    this.size = 0;
    this.poolUsed = 0;
  }

  private rehash(): void {
    heap.free(this.slots);
    this.slotCount *= 2;
    this.slots = zeroed(this.slotCount);
    const mask = this.slotCount - 1;
    for (let id = 0; id < this.size; id++) {
      let slot = i32At(this.hashes, id) & mask;
      while (i32At(this.slots, slot) != 0) slot = (slot + 1) & mask;
      setI32(this.slots, slot, id + 1);
    }
  }
}
