import assert from "node:assert/strict";
import { getBlobMeta, readBlob } from "../../lib/blobs.ts";
import { keys } from "../../lib/keys.ts";
import { searchRepo } from "../../lib/retrieval.ts";
import { ingestTar } from "../helpers.ts";

Deno.test("ingestArchive indexes a path given twice in a tar as stored: the earlier file's words are not found", async () => {
  // The first README fills the first shard with the first filler; the second README comes in the
  // third shard. Indexed again without the first README, the files make two shards.
  const filler = "export const padding = 'shard filler line';\n".repeat(24_100); // 1,060,400 chars
  const { kv, repo } = await ingestTar([
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

Deno.test("ingestArchive indexes a file given again after a symlink dropped the first as stored", async () => {
  const { kv, repo } = await ingestTar([
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

Deno.test("ingestArchive stores a thousand small files with long paths (KV takes 80 KiB of keys per commit)", async () => {
  const dir = "src/main/java/com/example/inventory/warehouse/service/impl";
  const { kv, repo } = await ingestTar(
    Array.from(
      { length: 1000 },
      (_, i) => ({ path: `${dir}/Handler${i}.java`, content: `class Handler${i} {}\n` }),
    ),
  );
  try {
    assert.equal(repo.stats.files, 1000);
    const stored = await kv.get(["repo_data", repo.id, repo.gen, "file", `${dir}/Handler999.java`]);
    assert.ok(stored.value, "the last file is stored");
    assert.equal((await searchRepo(kv, repo, "Handler999"))[0]?.path, `${dir}/Handler999.java`);
  } finally {
    kv.close();
  }
});

Deno.test("ingestArchive stores the tree as JSON.stringify writes it, in parts when large", async () => {
  const { kv, repo } = await ingestTar([
    ...Array.from(
      { length: 600 },
      (_, i) => ({ path: `docs/説明-${i}-${"x".repeat(80)}.md`, content: `# ${i}\n` }),
    ),
    { path: ".env", content: "TOKEN=1\n" },
    { path: "node_modules/left-pad/index.js", content: "module.exports = 1;\n" },
  ]);
  try {
    const meta = await getBlobMeta(kv, keys.repoTree(repo.id, repo.gen));
    assert.ok(meta && meta.parts > 1, `${meta?.parts} parts`);
    const text = new TextDecoder().decode((await readBlob(kv, keys.repoTree(repo.id, repo.gen), meta))!);
    const tree = JSON.parse(text);
    assert.equal(text, JSON.stringify(tree));
    assert.equal(tree.files.length, 600);
    assert.deepEqual([tree.files[0].path, tree.files[0].bytes], [`docs/説明-0-${"x".repeat(80)}.md`, 4]);
    assert.deepEqual(
      tree.skipped.map((s: { reason: string }) => s.reason).sort(),
      ["secret", "vendored"],
    );
  } finally {
    kv.close();
  }
});

Deno.test("ingestArchive counts each path once toward the tree's limit, however often it is given", async () => {
  const again = Array.from({ length: 50 }, (_, i) => ({ path: "a.ts", content: `export const v = ${i};\n` }));
  const { kv, repo } = await ingestTar(again, { treeBytes: 100 });
  kv.close();
  assert.equal(repo.stats.files, 1);
  const distinct = Array.from({ length: 30 }, (_, i) => ({ path: `f${i}.ts`, content: "x" })); // 170 bytes
  await assert.rejects(
    () => ingestTar(distinct, { treeBytes: 100 }),
    (e: Error & { code?: string }) =>
      e.code === "repo_too_large" && /100 bytes of file paths/.test(e.message),
  );
});
