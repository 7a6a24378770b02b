import assert from "node:assert/strict";
import {
  dropBlob,
  getBlobMeta,
  PART_BYTES,
  putBlob,
  readBlob,
  streamBlob,
  writeBlob,
  writeBlobFrom,
} from "../../lib/blobs.ts";
import { KvBatch } from "../../lib/kv_util.ts";

/** `size` bytes that differ from part to part and within one. */
const bytesOf = (size: number) => Uint8Array.from({ length: size }, (_, i) => (i * 7 + (i >> 10)) & 0xff);

async function keysUnder(kv: Deno.Kv, base: Deno.KvKey): Promise<Deno.KvKey[]> {
  const found = [];
  for await (const { key } of kv.list({ prefix: base })) found.push(key);
  if ((await kv.get(base)).versionstamp) found.push(base);
  return found;
}

Deno.test("putBlob and readBlob give back the bytes of every size, inline or in parts", async (t) => {
  const kv = await Deno.openKv(":memory:");
  try {
    for (const size of [0, 1, PART_BYTES, PART_BYTES + 1, 3 * PART_BYTES + 17, 1_500_000]) {
      await t.step(`${size} bytes`, async () => {
        const base = ["blob", size];
        const bytes = bytesOf(size);
        await putBlob(kv, base, bytes);
        const meta = await getBlobMeta(kv, base);
        assert.equal(meta?.size, size);
        assert.equal(meta?.parts, size <= PART_BYTES ? 0 : Math.ceil(size / PART_BYTES));
        assert.deepEqual(await readBlob(kv, base), bytes);
        // a small blob is its bytes, stored as they are
        if (size <= PART_BYTES) assert.deepEqual((await kv.get(base)).value, bytes);
        // every value fits in one KV value (64 KiB)
        for await (const { value } of kv.list<Uint8Array>({ prefix: base })) {
          assert.ok(value.byteLength <= 64 * 1024);
        }
      });
    }
  } finally {
    kv.close();
  }
});

Deno.test("a small blob stored the earlier way, as metadata with its bytes inline, reads the same", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const bytes = bytesOf(1000);
    await kv.set(["blob"], { size: 1000, parts: 0, inline: bytes, info: { language: "TypeScript" } });
    const meta = (await getBlobMeta(kv, ["blob"]))!;
    assert.equal(meta.size, 1000);
    assert.deepEqual(await readBlob(kv, ["blob"]), bytes);
    assert.deepEqual(
      await new Response(streamBlob(kv, ["blob"], meta, 10, 20)).bytes(),
      bytes.subarray(10, 20),
    );
  } finally {
    kv.close();
  }
});

Deno.test("streamBlob streams any range of a blob, across parts", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const bytes = bytesOf(3 * PART_BYTES + 100);
    await putBlob(kv, ["blob"], bytes);
    const meta = (await getBlobMeta(kv, ["blob"]))!;
    const ranges = [[0, bytes.length], [5, 6], [PART_BYTES - 3, PART_BYTES + 3], [
      PART_BYTES,
      3 * PART_BYTES + 1,
    ]];
    for (const [start, end] of ranges) {
      const streamed = await new Response(streamBlob(kv, ["blob"], meta, start, end)).bytes();
      assert.deepEqual(streamed, bytes.subarray(start, end), `${start}–${end}`);
    }
  } finally {
    kv.close();
  }
});

Deno.test("writeBlob queues the metadata after every part: until it commits, there is no blob", async () => {
  const ops: Deno.KvKey[] = [];
  const recording = { set: (key: Deno.KvKey) => Promise.resolve(void ops.push(key)) };
  await writeBlob(recording, ["blob"], bytesOf(2 * PART_BYTES + 1));
  assert.deepEqual(ops, [["blob", 0], ["blob", 1], ["blob", 2], ["blob"]]);

  // parts a crashed writer left behind, without their metadata, are not a blob to any reader
  const kv = await Deno.openKv(":memory:");
  try {
    await kv.set(["blob", 0], bytesOf(PART_BYTES));
    assert.equal(await getBlobMeta(kv, ["blob"]), null);
    assert.equal(await readBlob(kv, ["blob"]), null);
  } finally {
    kv.close();
  }
});

Deno.test("writeBlobFrom stores chunks as writeBlob stores their bytes, however they are cut", async (t) => {
  /** Bytes as their length and a checksum: a failed comparison of whole parts would print megabytes. */
  const summary = (bytes: Uint8Array) =>
    `${bytes.byteLength} bytes, sum ${bytes.reduce((a, b, i) => (a + b * (i + 1)) >>> 0, 0)}`;
  /** Every key and value a writer queues, in order (without fields left undefined: no reader tells). */
  const record = async (write: (batch: Pick<KvBatch, "set">) => Promise<void>) => {
    const ops: [Deno.KvKey, unknown][] = [];
    const described = (value: unknown) =>
      value instanceof Uint8Array ? summary(value) : Object.fromEntries(
        Object.entries(value as object).filter(([, v]) => v !== undefined)
          .map(([k, v]) => [k, v instanceof Uint8Array ? summary(v) : v]),
      );
    await write({ set: (key, value) => Promise.resolve(void ops.push([key, described(value)])) });
    return ops;
  };
  for (const size of [0, 1, PART_BYTES, PART_BYTES + 1, 3 * PART_BYTES + 17]) {
    await t.step(`${size} bytes`, async () => {
      const bytes = bytesOf(size);
      const expected = await record((batch) => writeBlob(batch, ["blob"], bytes));
      for (const cut of [1_000, 7_777, PART_BYTES, size || 1]) {
        const chunks = Array.from(
          { length: Math.ceil(size / cut) },
          (_, i) => bytes.subarray(i * cut, (i + 1) * cut),
        );
        assert.deepEqual(
          await record((batch) => writeBlobFrom(batch, ["blob"], chunks)),
          expected,
          `cut ${cut}`,
        );
      }
    });
  }
});

Deno.test("dropBlob deletes the metadata and every part", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    for (const size of [10, 4 * PART_BYTES + 5]) {
      await putBlob(kv, ["blob", size], bytesOf(size));
      assert.ok((await keysUnder(kv, ["blob", size])).length > 0);
      const batch = new KvBatch(kv);
      await dropBlob(batch, ["blob", size], size);
      await batch.flush();
      assert.deepEqual(await keysUnder(kv, ["blob", size]), [], `${size} bytes`);
    }
  } finally {
    kv.close();
  }
});
