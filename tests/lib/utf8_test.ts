import assert from "node:assert/strict";
import { utf8Length } from "../../lib/utf8.ts";

Deno.test("utf8Length is the length TextEncoder encodes, for every kind of code unit", () => {
  const units = ["a", "é", "語", "😀", "\ud800", "\udc00", "\u07ff", "\u0800", "\uffff"];
  let seed = 5;
  const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff) % units.length;
  for (let n = 0; n < 2_000; n++) {
    const text = Array.from({ length: n % 13 }, () => units[next()]).join("");
    assert.equal(utf8Length(text), new TextEncoder().encode(text).byteLength, JSON.stringify(text));
  }
});
