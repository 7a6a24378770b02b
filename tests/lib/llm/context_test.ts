import assert from "node:assert/strict";
import { buildContext } from "../../../lib/llm/context.ts";
import { ingestTar } from "../../helpers.ts";

Deno.test("buildContext fills its passages past hits in a file a later archive entry dropped", async () => {
  // "zebra" alone is the best match there is; the symlink that follows drops its file
  const { kv, repo } = await ingestTar([
    { path: "notes.md", content: "zebra\n" },
    { path: "notes.md", type: "symlink", linkTarget: "README.md" },
    ...[1, 2, 3].map((n) => ({ path: `docs/animals${n}.md`, content: `A zebra and ${n} other animals.\n` })),
  ]);
  try {
    assert.equal((await buildContext(kv, repo, { fileTokens: 0, query: "zebra" })).passages.length, 3);
    const two = await buildContext(kv, repo, { fileTokens: 0, query: "zebra", passages: 2 });
    assert.equal(two.passages.length, 2);
    assert.ok(two.passages.every((p) => p.path.startsWith("docs/animals")));
  } finally {
    kv.close();
  }
});
