import assert from "node:assert/strict";
import { slotHash, spanHash, SpanTable } from "../../lib/span_table.ts";

Deno.test("SpanTable gives each distinct span one id, whatever string it is found in", () => {
  const table = new SpanTable();
  assert.equal(table.intern("let parse = 1", 4, 9), 0); // "parse"
  assert.equal(table.intern("parse(x)", 0, 5), 0);
  assert.equal(table.intern("parser", 0, 6), 1);
  assert.equal(table.intern("xx", 1, 1), 2); // the empty span is a key too
  assert.equal(table.intern("", 0, 0), 2);
  assert.equal(table.intern("parse", 0, 5, spanHash("parse", 0, 5)), 0);
  assert.equal(table.size, 3);
});

Deno.test("SpanTable keeps every id through growth, and forgets all on clear", async (t) => {
  const words = Array.from({ length: 20_000 }, (_, i) => `w${i.toString(36)}é`);
  // the default room, a room that is not a power of two, and room for every word from the start
  for (const room of [undefined, 3, 100, 20_000]) {
    await t.step(`room for ${room ?? "the default"}`, () => {
      const table = new SpanTable(room);
      words.forEach((w, i) => assert.equal(table.intern(` ${w} `, 1, w.length + 1), i));
      words.forEach((w, i) => assert.equal(table.intern(w, 0, w.length), i));
      assert.equal(table.find("w0", 0, 2), -1);
      assert.equal(table.size, words.length);
      table.clear();
      assert.equal(table.size, 0);
      assert.equal(table.intern(words[5], 0, words[5].length), 0);
    });
  }
});

/** FNV-1a from its published basis: the hash an attacker can compute offline. */
const PUBLIC_BASIS = 0x811c9dc5 | 0;
const WORD_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_";
const fnv = (basis: number, text: string) => {
  let h = basis;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h;
};

/** Two different 3-letter blocks that take FNV-1a from `state` to the same hash in the bits of `mask`. */
function collidingBlocks(state: number, mask: number): [string, string] {
  const seen = new Map<number, string>();
  for (const a of WORD_CHARS) {
    for (const b of WORD_CHARS) {
      for (const c of WORD_CHARS) {
        const block = a + b + c;
        const h = fnv(state, block);
        const other = seen.get(h & mask);
        if (other !== undefined && fnv(state, other) !== h) return [other, block];
        seen.set(h & mask, block);
      }
    }
  }
  throw new Error("no colliding blocks");
}

Deno.test("words crafted to share a slot under a public hash spread over the table", () => {
  // 15 pairs of colliding blocks chained: 32,768 words with one hash in its low 20 bits, so one
  // home slot in any table of up to 2^20 slots — had the table used FNV-1a's low bits from its basis
  const pairs: [string, string][] = [];
  let state = PUBLIC_BASIS;
  for (let level = 0; level < 15; level++) {
    const pair = collidingBlocks(state, (1 << 20) - 1);
    pairs.push(pair);
    state = fnv(state, pair[0]);
  }
  const words = Array.from(
    { length: 1 << 15 },
    (_, i) => pairs.map((p, level) => p[(i >> level) & 1]).join(""),
  );
  assert.equal(new Set(words.map((w) => fnv(PUBLIC_BASIS, w) & 0xfffff)).size, 1);

  const slots = new Set(words.map((w) => slotHash(spanHash(w, 0, w.length)) & ((1 << 17) - 1)));
  assert.ok(slots.size > 25_000, `${slots.size} distinct slots for ${words.length} words`);
});

Deno.test("hashes are seeded per process: a full collision of the public hash is not one here", () => {
  const seen = new Map<number, string>();
  let pair: [string, string] | undefined;
  for (let i = 0; !pair; i++) {
    const word = `w${i.toString(36)}`;
    const h = fnv(PUBLIC_BASIS, word);
    const other = seen.get(h);
    if (other !== undefined) pair = [other, word];
    seen.set(h, word);
  }
  const [a, b] = pair;
  assert.equal(fnv(PUBLIC_BASIS, a), fnv(PUBLIC_BASIS, b));
  assert.notEqual(spanHash(a, 0, a.length), spanHash(b, 0, b.length), `${a} and ${b}`);
});
