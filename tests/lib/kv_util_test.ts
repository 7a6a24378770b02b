import assert from "node:assert/strict";
import { KvBatch } from "../../lib/kv_util.ts";

const value = new Uint8Array(2048);

Deno.test("KvBatch commits every write across many commits, in order, by flush", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const batch = new KvBatch(kv);
    for (let i = 0; i < 1500; i++) await batch.set(["k", i], value);
    await batch.set(["k", 0], "overwritten last");
    await batch.flush();
    let n = 0;
    for await (const _ of kv.list({ prefix: ["k"] })) n++;
    assert.equal(n, 1500);
    assert.equal((await kv.get(["k", 0])).value, "overwritten last");
  } finally {
    kv.close();
  }
});

Deno.test("KvBatch keeps each commit's keys under KV's 80 KiB in all: many small files with long paths", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const batch = new KvBatch(kv);
    const paths = [
      ...Array.from({ length: 1000 }, (_, i) => `${"src/main/java/".repeat(5)}Service${i}.java`),
      ...Array.from({ length: 300 }, (_, i) => `文档/${"说明".repeat(200)}${i}.md`), // 1.2 KiB in UTF-8
    ];
    for (const path of paths) await batch.set(["repo_data", "repo", "gen", "file", path], { size: 1 });
    await batch.flush();
    let n = 0;
    for await (const _ of kv.list({ prefix: ["repo_data", "repo", "gen", "file"] })) n++;
    assert.equal(n, paths.length);
  } finally {
    kv.close();
  }
});

Deno.test("KvBatch stops at a failed check: the error surfaces and later writes are not committed", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    await kv.set(["lease"], 1);
    const lease = await kv.get(["lease"]);
    const lost = new Error("lease lost");
    const batch = new KvBatch(kv, () => [lease], () => lost);
    await kv.set(["lease"], 2);
    await assert.rejects(async () => {
      for (let i = 0; i < 1500; i++) await batch.set(["k", i], value);
      await batch.flush();
    }, lost);
    await assert.rejects(() => batch.flush(), lost);
    let n = 0;
    for await (const _ of kv.list({ prefix: ["k"] })) n++;
    assert.equal(n, 0);
  } finally {
    kv.close();
  }
});
