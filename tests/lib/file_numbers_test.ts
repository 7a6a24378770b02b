import assert from "node:assert/strict";
import { compareKeyStrings, findFileNumber, writeFileNumbers } from "../../lib/file_numbers.ts";
import { KvBatch } from "../../lib/kv_util.ts";

Deno.test("compareKeyStrings orders strings as KV orders its keys", async () => {
  // U+E000–U+FFFF sort before a pair's units in UTF-16, after them by code point (and in KV)
  const strings = [
    "a",
    "ab",
    "b",
    "a\u{e000}",
    "a\u{1f600}",
    "a\u{ffff}",
    "é",
    "\u{10000}",
    "",
    "Z",
    "a/b",
    "a-b",
  ];
  const kv = await Deno.openKv(":memory:");
  try {
    for (const s of strings) await kv.set(["k", s], true);
    const inKv = [];
    for await (const { key } of kv.list({ prefix: ["k"] })) inKv.push(key[1]);
    assert.deepEqual([...strings].sort(compareKeyStrings), inKv);
    assert.notDeepEqual([...strings].sort(), inKv, "plain sort differs, or the case proves nothing");
  } finally {
    kv.close();
  }
});

Deno.test("writeFileNumbers pages the numbers; findFileNumber finds every path and no other", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    // 1,302 short paths fill two pages of 512 and 278 of a third, which 26 paths of ~1 KB fill up
    // to 32 KiB; the other 14 make a fourth
    const numbered: [string, number][] = [];
    for (let i = 0; i < 1300; i++) numbered.push([`src/f${String(i).padStart(4, "0")}.ts`, 1300 - i]);
    for (let i = 0; i < 40; i++) {
      numbered.push([`z/${String(i).padStart(2, "0")}${"x".repeat(1000)}`, 2000 + i]);
    }
    numbered.push(["a\u{1f600}.ts", 5000], ["a\u{e000}.ts", 5001]);
    const shuffled = [...numbered].sort(() => Math.random() - 0.5);
    const batch = new KvBatch(kv);
    await writeFileNumbers(batch, "r", "g", shuffled);
    await batch.flush();
    const pages = [];
    for await (const { key, value } of kv.list<{ paths: string[] }>({ prefix: ["repo_data", "r", "g"] })) {
      assert.equal(key[3], "file_numbers");
      assert.equal(key[4], value.paths[0], "a page is under its first path");
      pages.push(value.paths.length);
    }
    assert.deepEqual(pages, [512, 512, 278 + 26, 14]);
    for (const [path, n] of numbered) assert.equal(await findFileNumber(kv, "r", "g", path), n, path);
    for (const missing of ["", "a", "src/f0000.t", "src/f0000.tsx", "src/f1299.tz", "zz", "a\u{1f600}"]) {
      assert.equal(await findFileNumber(kv, "r", "g", missing), null, missing);
    }
    assert.equal(await findFileNumber(kv, "r", "other", "src/f0000.ts"), null);
  } finally {
    kv.close();
  }
});
