import assert from "node:assert/strict";
import { ShardCounter, type ShardTermCounts } from "../../lib/shard_counter.ts";
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

/** The counter's entries as per-field maps of term → count (fields numbered by mark, from 1). */
function byField({ terms, entries }: ShardTermCounts, fields: number) {
  const out = Array.from({ length: fields }, () => new Map<string, number>());
  for (let at = 0; at < entries.length; at += 3) {
    out[entries[at + 1] - 1].set(terms[entries[at]], entries[at + 2]);
  }
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
  ])];
  const distinct = fields.map((text, i) => counter.addField(i + 1, text, 0, text.length));
  const expected = reference(fields);
  assert.deepEqual(distinct, expected.map((e) => e.distinct));
  const counts = counter.take();
  assert.deepEqual(byField(counts, fields.length), expected.map((e) => e.counts));
  // ids in the order first seen, each term once
  const firstSeen = [...new Set(expected.flatMap((e) => [...e.counts.keys()]))];
  assert.deepEqual(counts.terms, firstSeen);
});

Deno.test("the counter counts a span of the text, and starts afresh after take()", () => {
  const counter = new ShardCounter();
  const text = "ignored parse parse Parse ignored";
  assert.equal(counter.addField(1, text, 8, 25), 2); // "parse", "Parse"
  assert.equal(counter.tokens, 2);
  const first = counter.take();
  assert.deepEqual([first.terms, [...first.entries]], [["parse"], [0, 1, 3]]);
  assert.equal(counter.tokens, 0);
  assert.equal(counter.addField(1, "url parse", 0, 9), 2);
  const second = counter.take();
  assert.deepEqual([second.terms, [...second.entries]], [["url", "parse"], [0, 1, 1, 1, 1, 1]]);
});

Deno.test("the counter grows its memory for a field of a megabyte of distinct words", () => {
  const counter = new ShardCounter();
  const words = Array.from({ length: 160_000 }, (_, i) => `w${i.toString(36)}x`);
  const text = words.join(" ");
  assert.ok(text.length > 1_000_000);
  assert.equal(counter.addField(1, text, 0, text.length), words.length);
  assert.equal(counter.addField(2, text, 0, text.length), words.length);
  const { terms, entries } = counter.take();
  assert.deepEqual(terms, words);
  assert.equal(entries.length, 2 * 3 * words.length);
  assert.deepEqual([...entries.subarray(entries.length - 3)], [words.length - 1, 2, 1]);
  assert.equal(counter.addField(1, "parse url", 0, 9), 2);
  assert.deepEqual(counter.take().terms, ["parse", "url"]);
});
