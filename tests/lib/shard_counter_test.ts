import assert from "node:assert/strict";
import { ShardCounter, type ShardPostings } from "../../lib/shard_counter.ts";
import { randomTexts, regexTokens } from "../tokenizer_reference.ts";

/** Per field, what the index keeps of it: distinct raw tokens, and each term's count. */
function reference(fields: string[]) {
  return fields.map((text) => {
    const raw = regexTokens(text);
    const counts = new Map<string, number>();
    for (const token of raw) {
      const term = token.toLowerCase();
      if (term.length >= 2 && term.length <= 40) counts.set(term, (counts.get(term) ?? 0) + 1);
    }
    return { distinct: new Set(raw).size, counts };
  });
}

/**
 * A shard's postings decoded as maps of term → count per chunk field (by mark − 1 = chunk ×
 * fields + field): per term and field, the byte length of its postings; then for each, chunk id
 * steps and counts (varints).
 */
function byField({ terms, postings }: ShardPostings, marks: number, fields = 1) {
  const out = Array.from({ length: marks }, () => new Map<string, number>());
  let at = 0;
  const varint = () => {
    let n = 0;
    for (let shift = 0;; shift += 7) {
      const b = postings[at++];
      n += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return n;
    }
  };
  const lengths = Array.from({ length: terms.length * fields }, varint);
  lengths.forEach((length, slot) => {
    const [term, field] = [terms[Math.floor(slot / fields)], slot % fields];
    for (let chunk = 0, end = at + length; at < end;) {
      out[(chunk += varint()) * fields + field].set(term, varint());
    }
  });
  assert.equal(at, postings.length);
  return out;
}

Deno.test("the WebAssembly counter finds the tokens and terms the JavaScript tokenizer finds", () => {
  const counter = new ShardCounter();
  const fields = [...randomTexts(5_000, [
    ..."aQ09_ -.\n".split(""),
    "é",
    "日",
    "😀",
    "HTMLParser",
    "__init__",
    "parseGitHubUrl",
    "abcdefghijklmnopqrstuvwxyz0123456789",
    // more parts than the counter lists per word: split again at each occurrence
    "a_b_c_d_e_f_g_h_i_j",
    "__________",
  ])];
  const distinct = fields.map((text, i) => counter.addField(i + 1, text, 0, text.length));
  const expected = reference(fields);
  assert.deepEqual(distinct, expected.map((e) => e.distinct));
  const counts = counter.take(1);
  assert.deepEqual(byField(counts, fields.length), expected.map((e) => e.counts));
  // each term once, sorted as JavaScript sorts strings
  assert.deepEqual(counts.terms, [...new Set(expected.flatMap((e) => [...e.counts.keys()]))].sort());
});

Deno.test("the counter counts a span of the text, and starts afresh after take()", () => {
  const counter = new ShardCounter();
  const text = "ignored parse parse Parse ignored";
  assert.equal(counter.addField(1, text, 8, 25), 2); // "parse", "Parse"
  assert.equal(counter.tokens, 2);
  const first = counter.take(1);
  // "parse": its postings are 2 bytes long; chunk 0 (a step of 0), 3 times
  assert.deepEqual([first.terms, [...first.postings]], [["parse"], [2, 0, 3]]);
  assert.equal(counter.tokens, 0);
  assert.equal(counter.addField(1, "url parse", 0, 9), 2);
  const second = counter.take(1);
  assert.deepEqual([second.terms, [...second.postings]], [["parse", "url"], [2, 2, 0, 1, 0, 1]]);
});

Deno.test("the counter grows its memory for a field of a megabyte of distinct words", () => {
  const counter = new ShardCounter();
  const words = Array.from({ length: 160_000 }, (_, i) => `w${i.toString(36)}x`);
  const text = words.join(" ");
  assert.ok(text.length > 1_000_000);
  assert.equal(counter.addField(1, text, 0, text.length), words.length);
  assert.equal(counter.addField(2, text, 0, text.length), words.length);
  const taken = counter.take(1);
  assert.deepEqual(taken.terms, [...words].sort());
  const both = new Map(words.map((w) => [w, 1]));
  assert.deepEqual(byField(taken, 2), [both, both]);
  assert.equal(counter.addField(1, "parse url", 0, 9), 2);
  assert.deepEqual(counter.take(1).terms, ["parse", "url"]);
});

Deno.test("the counter's postings hold steps, counts and lengths of more than one byte", () => {
  const counter = new ShardCounter();
  const fields = 2;
  const chunks = 300;
  const expected = Array.from({ length: chunks * fields }, () => new Map<string, number>());
  for (let chunk = 0; chunk < chunks; chunk++) {
    // "often" in every chunk's text, 200 times in the last; "rare" in the path of the first and last
    const text = chunk === chunks - 1 ? "often ".repeat(200) : "often";
    counter.addField(1 + chunk * fields + 1, text, 0, text.length);
    expected[chunk * fields + 1].set("often", chunk === chunks - 1 ? 200 : 1);
    if (chunk === 0 || chunk === chunks - 1) {
      counter.addField(1 + chunk * fields, "rare", 0, 4);
      expected[chunk * fields].set("rare", 1);
    }
  }
  const taken = counter.take(fields);
  assert.deepEqual(taken.terms, ["often", "rare"]);
  assert.deepEqual(byField(taken, chunks * fields, fields), expected);
});
