import assert from "node:assert/strict";
import { countTokens } from "../../lib/tokens.ts";
import { TokenCounter } from "../../lib/token_counter.ts";

Deno.test("TokenCounter gives the exact counts, on this thread at first and in a Worker past its limit", async () => {
  const texts = Array.from(
    { length: 40 },
    (_, i) => `export function handler${i}(input: string) {\n  return input.repeat(${i});\n}\n`.repeat(1000),
  );
  const counter = new TokenCounter(1024 * 1024);
  try {
    // counts are asked for before any is awaited, as ingest does; the later ones go to the Worker
    const counts = await Promise.all(texts.map((t) => counter.count(t)));
    assert.deepEqual(counts, texts.map((t) => countTokens(t)));
    assert.ok(
      counter.offloaded > 0 && counter.offloaded < texts.length,
      `${counter.offloaded} in the Worker`,
    );
  } finally {
    counter.close();
  }
});
