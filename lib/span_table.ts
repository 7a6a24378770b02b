/**
 * A hash set of strings looked up by a span of a longer string (its UTF-16 code units from `start`
 * to `end`), so a lookup makes no substring. Each distinct key gets the next id (0, 1, 2 …); callers
 * keep what they know of a key in arrays indexed by its id.
 *
 * It exists for ingest's token counter, which looks up every word of a repository, where a `Map`
 * keyed by fresh substrings spent most of its time hashing and allocating them (the retrieval
 * index's words are interned in WebAssembly with the same hash: lib/wasm/shard_counter.ts).
 */
/**
 * FNV-1a over UTF-16 code units, each step's high bits folded into its low ones:
 * `hash = hashStep(hash, code)` from `HASH_SEED`, for each unit.
 *
 * The seed is random, per process. From a fixed one, anyone can craft a file of thousands of
 * words with one hash (colliding blocks chain: if A and B collide, so do AX and BX), and every
 * lookup of them walks them all: 32,768 such words (a 1.5 MB file) took 985 ms to intern instead
 * of 9 ms, and more words cost quadratically more. In plain FNV-1a a state's low bits depend only
 * on the low bits before, so a seed whose low byte was the public basis's kept a crafted
 * collision in ~0.8 % of processes; with the fold, none of 2,000,000 random seeds did. Hashes are
 * never stored, so nothing depends on the seed beyond the process.
 */
const HASH_SEED = crypto.getRandomValues(new Int32Array(1))[0];
function hashStep(hash: number, code: number): number {
  const h = Math.imul(hash ^ code, 0x01000193);
  return h ^ (h >>> 15);
}

/**
 * The hash a span is known by: the low 30 bits of its running hash. V8 keeps integers of up to 31
 * bits unboxed; a full 32-bit hash passed to a function that is not inlined gets a heap number,
 * one allocation per word looked up (docs/PERFORMANCE.md, ninth session).
 */
const finalHash = (hash: number): number => hash & 0x3fffffff;

/**
 * A hash's home slot, before the table's mask: FNV-1a's low bits depend only on the low bits of
 * each code unit, so the high bits are mixed in.
 */
export function slotHash(hash: number): number {
  const h = Math.imul(hash ^ (hash >>> 16), 0x45d9f3b);
  return h ^ (h >>> 16);
}

export function spanHash(text: string, start: number, end: number): number {
  let hash = HASH_SEED;
  for (let i = start; i < end; i++) hash = hashStep(hash, text.charCodeAt(i));
  return finalHash(hash);
}

export class SpanTable {
  /** Per slot: key id + 1; 0 is empty. Open addressing, linear probing, at most half full. */
  #slots: Int32Array<ArrayBuffer>;
  #hashes: Int32Array<ArrayBuffer>;
  #starts: Int32Array<ArrayBuffer>;
  #lengths: Int32Array<ArrayBuffer>;
  /** Every key's code units, one after another. */
  #pool: Uint16Array<ArrayBuffer>;
  #poolUsed = 0;
  size = 0;

  /** `keys`: how many keys to make room for before the table grows (a large table known in advance). */
  constructor(keys = 512) {
    const room = 2 ** Math.ceil(Math.log2(Math.max(keys, 2)));
    this.#slots = new Int32Array(room * 2);
    this.#hashes = new Int32Array(room);
    this.#starts = new Int32Array(room);
    this.#lengths = new Int32Array(room);
    this.#pool = new Uint16Array(room * 8);
  }

  /**
   * The id of the key `text[start, end)`, adding it when new (then its id is `size - 1`). A caller
   * that scans the span anyway may pass its hash, built with {@link HASH_SEED}, {@link hashStep}
   * and {@link finalHash}.
   */
  intern(text: string, start: number, end: number, hash = spanHash(text, start, end)): number {
    const slot = this.#slotOf(text, start, end, hash);
    const entry = this.#slots[slot];
    return entry === 0 ? this.#add(text, start, end - start, hash, slot) : entry - 1;
  }

  /** The id of the key `text[start, end)`, or -1 when it is not in the table. */
  find(text: string, start: number, end: number): number {
    return this.#slots[this.#slotOf(text, start, end, spanHash(text, start, end))] - 1;
  }

  /** The slot holding the key, or the empty slot where it would go. */
  #slotOf(text: string, start: number, end: number, hash: number): number {
    const mask = this.#slots.length - 1;
    const length = end - start;
    for (let slot = slotHash(hash) & mask;; slot = (slot + 1) & mask) {
      const entry = this.#slots[slot];
      if (entry === 0) return slot;
      const id = entry - 1;
      if (this.#hashes[id] === hash && this.#lengths[id] === length && this.#equals(id, text, start)) {
        return slot;
      }
    }
  }

  /** How many code units the keys hold in all. */
  get units(): number {
    return this.#poolUsed;
  }

  /** Forgets every key (ids start again at 0). */
  clear(): void {
    this.#slots.fill(0);
    this.size = 0;
    this.#poolUsed = 0;
  }

  #equals(id: number, text: string, start: number): boolean {
    const pool = this.#pool;
    const at = this.#starts[id];
    for (let i = 0, n = this.#lengths[id]; i < n; i++) {
      if (pool[at + i] !== text.charCodeAt(start + i)) return false;
    }
    return true;
  }

  #add(text: string, start: number, length: number, hash: number, slot: number): number {
    const id = this.size++;
    this.#hashes = withRoom(this.#hashes, id);
    this.#starts = withRoom(this.#starts, id);
    this.#lengths = withRoom(this.#lengths, id);
    if (this.#poolUsed + length > this.#pool.length) {
      const pool = new Uint16Array(Math.max(this.#pool.length * 2, this.#poolUsed + length));
      pool.set(this.#pool.subarray(0, this.#poolUsed));
      this.#pool = pool;
    }
    for (let i = 0; i < length; i++) this.#pool[this.#poolUsed + i] = text.charCodeAt(start + i);
    this.#hashes[id] = hash;
    this.#starts[id] = this.#poolUsed;
    this.#lengths[id] = length;
    this.#poolUsed += length;
    this.#slots[slot] = id + 1;
    if (this.size * 2 > this.#slots.length) this.#rehash();
    return id;
  }

  #rehash(): void {
    const slots = new Int32Array(this.#slots.length * 2);
    const mask = slots.length - 1;
    for (let id = 0; id < this.size; id++) {
      let slot = slotHash(this.#hashes[id]) & mask;
      while (slots[slot] !== 0) slot = (slot + 1) & mask;
      slots[slot] = id + 1;
    }
    this.#slots = slots;
  }
}

/** `array` when it has room for index `index`, else a copy twice as long. */
export function withRoom(array: Int32Array<ArrayBuffer>, index: number): Int32Array<ArrayBuffer> {
  if (index < array.length) return array;
  const copy = new Int32Array(Math.max(array.length * 2, index + 1));
  copy.set(array);
  return copy;
}
