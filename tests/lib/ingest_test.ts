import assert from "node:assert/strict";
import { ingestArchive } from "../../lib/ingest.ts";
import { KvBatch } from "../../lib/kv_util.ts";
import { buildContext } from "../../lib/llm/context.ts";
import type { RepoRecord } from "../../lib/repos.ts";
import { searchRepo } from "../../lib/retrieval.ts";
import { buildTar, type FixtureEntry } from "../fakes/archives.ts";

/** Ingests a tar of `entries` into an in-memory KV, as an upload is. */
async function ingest(entries: FixtureEntry[]) {
  const kv = await Deno.openKv(":memory:");
  const tar = await buildTar(entries);
  const repo = { id: `repo-${crypto.randomUUID()}`, gen: "gen" };
  const result = await ingestArchive({
    kv,
    repoId: repo.id,
    gen: repo.gen,
    archive: ReadableStream.from([tar]),
    stripSegments: 0,
    filters: {},
    limits: { fileBytes: 2 << 20, files: 1000, totalBytes: 1 << 26, decompressedBytes: 1 << 27 },
    batch: new KvBatch(kv),
    signal: new AbortController().signal,
  });
  const record: RepoRecord = {
    ...repo,
    status: "ready",
    source: { type: "upload", filename: "test.tar" },
    filters: {},
    stats: result.stats,
    indexShards: result.indexShards,
    createdAt: 0,
    expiresAt: 0,
  };
  return { kv, repo: record };
}

Deno.test("a file given again in a tar is searched as stored: the earlier one's words are not found", async () => {
  // The first README fills the first shard with the first filler; the second README comes in the
  // third shard. Indexed again without the first README, the files make two shards.
  const filler = "export const padding = 'shard filler line';\n".repeat(24_100); // 1,060,400 chars
  const { kv, repo } = await ingest([
    { path: "README.md", content: `# Zebra\n\n${"zebras everywhere\n".repeat(58_500)}` },
    ...[1, 2, 3].map((n) => ({ path: `src/filler${n}.ts`, content: filler })),
    { path: "src/main.ts", content: "export function start() {}\n" },
    { path: "README.md", content: "# Giraffe\n\nThe second readme talks about giraffes.\n" },
  ]);
  try {
    assert.equal(repo.indexShards, 2);
    const shards = [];
    for await (const { key } of kv.list({ prefix: ["repo_data", repo.id, repo.gen, "index"] })) {
      if (key.length === 5) shards.push(key[4]);
    }
    assert.deepEqual(shards, [0, 1], "the first build's third shard is gone");
    assert.deepEqual(await searchRepo(kv, repo, "zebra"), []);
    const hits = await searchRepo(kv, repo, "giraffe");
    assert.deepEqual(hits.map((h) => [h.path, h.startLine]), [["README.md", 1]]);
    assert.equal((await searchRepo(kv, repo, "start"))[0]?.path, "src/main.ts");
    assert.equal((await searchRepo(kv, repo, "padding")).length, 8);
  } finally {
    kv.close();
  }
});

Deno.test("a file given again after a symlink dropped the first is searched as stored too", async () => {
  const { kv, repo } = await ingest([
    { path: "README.md", content: "# Zebra\n\nThe first readme talks about zebras.\n" },
    { path: "README.md", type: "symlink", linkTarget: "docs/README.md" },
    { path: "README.md", content: "# Giraffe\n\nThe last readme talks about giraffes.\n" },
  ]);
  try {
    assert.deepEqual(await searchRepo(kv, repo, "zebra"), []);
    assert.deepEqual((await searchRepo(kv, repo, "giraffe")).map((h) => h.path), ["README.md"]);
  } finally {
    kv.close();
  }
});

Deno.test("a file a later entry dropped costs a question none of its passages", async () => {
  // "zebra" alone is the best match there is; the symlink that follows drops its file
  const { kv, repo } = await ingest([
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
