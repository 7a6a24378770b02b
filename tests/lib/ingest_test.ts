import assert from "node:assert/strict";
import { getBlobMeta, putBlob, readBlob } from "../../lib/blobs.ts";
import { keys } from "../../lib/keys.ts";
import { findFileBlob } from "../../lib/repos.ts";
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

Deno.test("ingestArchive stores files by path while paths come in key order, by number after; a path given again leaves one blob", async () => {
  const { kv, repo } = await ingestTar([
    { path: "b.ts", content: "export const b = 1;\n" },
    { path: "a.ts", content: "export const a = 1;\n" },
    { path: "b.ts", content: "export const b = 2;\n" },
    { path: "c.ts", content: "export const c = 1;\n" },
    { path: "d.ts", content: "export const d = 1;\n" },
    { path: "c.ts", type: "symlink", linkTarget: "a.ts" },
  ]);
  try {
    const under = async (kind: string) => {
      const found: [Deno.KvKeyPart, unknown][] = [];
      for await (const e of kv.list({ prefix: ["repo_data", repo.id, repo.gen, kind] })) {
        found.push([e.key[4], e.value instanceof Uint8Array ? "bytes" : e.value]);
      }
      return found;
    };
    // b.ts's first file and c.ts (dropped by the symlink) leave nothing behind
    assert.deepEqual(await under("file"), [["d.ts", "bytes"]]);
    assert.deepEqual(await under("files"), [[0, "bytes"], [1, "bytes"]]);
    assert.deepEqual(await under("file_numbers"), [["a.ts", { paths: ["a.ts", "b.ts"], numbers: [0, 1] }]]);
    const text = async (path: string) => {
      const found = await findFileBlob(kv, repo, path);
      const bytes = found && await readBlob(kv, found.key, found.meta);
      return bytes && new TextDecoder().decode(bytes);
    };
    assert.deepEqual(
      [await text("a.ts"), await text("b.ts"), await text("c.ts"), await text("d.ts")],
      ["export const a = 1;\n", "export const b = 2;\n", null, "export const d = 1;\n"],
    );
  } finally {
    kv.close();
  }
});

Deno.test("findFileBlob finds files as earlier versions stored them: under the path, or by number with a key per path", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const repo = { id: "old", gen: "gen" };
    const byPath = new TextEncoder().encode("export const old = true;\n");
    const byNumber = new TextEncoder().encode("export const numbered = true;\n");
    await putBlob(kv, keys.repoFileByPath(repo.id, repo.gen, "src/old.ts"), byPath);
    await putBlob(kv, keys.repoFileByNumber(repo.id, repo.gen, 7), byNumber);
    await kv.set(keys.repoFileNumberOfPath(repo.id, repo.gen, "src/numbered.ts"), 7);
    const read = async (path: string) => {
      const found = await findFileBlob(kv, repo, path);
      return found && await readBlob(kv, found.key, found.meta);
    };
    assert.deepEqual(await read("src/old.ts"), byPath);
    assert.deepEqual(await read("src/numbered.ts"), byNumber);
    assert.equal(await read("src/missing.ts"), null);
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
    const found = await findFileBlob(kv, repo, `${dir}/Handler999.java`);
    const stored = found && await readBlob(kv, found.key, found.meta);
    assert.equal(new TextDecoder().decode(stored!), "class Handler999 {}\n", "the last file is stored");
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
