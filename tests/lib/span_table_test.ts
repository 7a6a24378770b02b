import assert from "node:assert/strict";
import { spanHash, SpanTable } from "../../lib/span_table.ts";

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

Deno.test("SpanTable keeps every id through growth, and forgets all on clear", () => {
  const table = new SpanTable();
  const words = Array.from({ length: 20_000 }, (_, i) => `w${i.toString(36)}é`);
  words.forEach((w, i) => assert.equal(table.intern(` ${w} `, 1, w.length + 1), i));
  words.forEach((w, i) => assert.equal(table.intern(w, 0, w.length), i));
  assert.equal(table.size, words.length);
  table.clear();
  assert.equal(table.size, 0);
  assert.equal(table.intern(words[5], 0, words[5].length), 0);
});
