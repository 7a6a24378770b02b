import assert from "node:assert/strict";
import { KvBatch } from "../../lib/kv_util.ts";

const value = new Uint8Array(2048);

for (const inFlight of [1, 3]) {
  Deno.test(`KvBatch commits every write across many commits, in order, by flush (${inFlight} in flight)`, async () => {
    const kv = await Deno.openKv(":memory:");
    try {
      const batch = new KvBatch(kv, { inFlight });
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
}

/**
 * A stand-in for Deno KV's atomic commits, which lands each commit a timer tick after it is sent
 * and records `key:first byte of value` as it lands; the first commit holding `flaky` fails once,
 * as one does while another process holds the file.
 */
function fakeKv(flaky: string) {
  const landed: string[] = [];
  let sent = 0;
  let most = 0;
  let failed = false;
  const kv = {
    atomic() {
      const writes: string[] = [];
      const op = {
        check: () => op,
        set: (key: Deno.KvKey, v: Uint8Array) => (writes.push(`${String(key[0])}:${v[0]}`), op),
        async commit() {
          most = Math.max(most, ++sent);
          await new Promise((resolve) => setTimeout(resolve, 0));
          sent--;
          if (!failed && writes.some((w) => w.startsWith(`${flaky}:`))) {
            failed = true;
            throw new Error("database is locked");
          }
          landed.push(...writes);
          return { ok: true, versionstamp: "00" };
        },
      };
      return op;
    },
  };
  return { kv: kv as unknown as Deno.Kv, landed, most: () => most };
}

Deno.test("KvBatch with commits in flight sends one that shares a key with them only once they landed", async () => {
  // each write is a commit of its own (two would pass 700 KB); "a" is written twice, and its first
  // commit must be retried: the second must not land before it, though "x" may
  const big = (fill: number) => new Uint8Array(400 * 1024).fill(fill);
  const { kv, landed, most } = fakeKv("a");
  const batch = new KvBatch(kv, { inFlight: 3 });
  await batch.set(["x"], big(1));
  await batch.set(["a"], big(1));
  await batch.set(["a"], big(2));
  await batch.flush();
  assert.deepEqual(landed, ["x:1", "a:1", "a:2"]);
  assert.equal(most(), 2, "x and the first a were in flight together");
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

for (const inFlight of [1, 3]) {
  Deno.test(`KvBatch stops at a failed check: the error surfaces and later writes are not committed (${inFlight} in flight)`, async () => {
    const kv = await Deno.openKv(":memory:");
    try {
      await kv.set(["lease"], 1);
      const lease = await kv.get(["lease"]);
      const lost = new Error("lease lost");
      const batch = new KvBatch(kv, { checks: () => [lease], onCheckFailed: () => lost, inFlight });
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
}
