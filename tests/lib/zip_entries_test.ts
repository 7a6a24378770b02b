import assert from "node:assert/strict";
import { deflateRawSync } from "node:zlib";
import { Zip, ZipDeflate, ZipPassThrough } from "fflate";
import {
  inflateEntry,
  TOO_LARGE,
  type ZipEntry,
  ZipEntryReader,
  ZipFormatError,
} from "../../lib/zip_entries.ts";
import { concatBytes } from "../../lib/bytes.ts";
import { buildZip } from "../fakes/archives.ts";

const utf8 = new TextEncoder();
const text = (bytes: Uint8Array | null) => (bytes ? new TextDecoder().decode(bytes) : null);

/** Every entry `reader` reads from `zip` pushed in chunks of `chunk` bytes, and the reader. */
function readAll(zip: Uint8Array, chunk: number, maxKept = 1 << 20) {
  const reader = new ZipEntryReader(maxKept);
  const entries: ZipEntry[] = [];
  for (let at = 0; at < zip.byteLength && !reader.directory(); at += chunk) {
    entries.push(...reader.push(zip.subarray(at, at + chunk)));
  }
  reader.end();
  return { entries, reader };
}

/** An entry's bytes as the archive reader makes them: inflated when deflated. */
const contentOf = (
  e: ZipEntry,
) => (e.method === 8 && e.data ? inflateEntry(e.data, e.size, 1 << 20) : e.data);

/** A zip written by a streaming writer: every entry's sizes come after its data, in a data descriptor. */
function streamedZip(files: { path: string; content: Uint8Array; store?: boolean }[]): Uint8Array {
  const out: Uint8Array[] = [];
  const zip = new Zip((err, data) => {
    if (err) throw err;
    out.push(data);
  });
  for (const { path, content, store } of files) {
    const file = store ? new ZipPassThrough(path) : new ZipDeflate(path);
    zip.add(file);
    file.push(content, true);
  }
  zip.end();
  return concatBytes(out);
}

Deno.test("ZipEntryReader reads each entry from its local header, in chunks of any size, and stops at the central directory", () => {
  const files = [
    { path: "README.md", content: "# Demo\n" },
    { path: "src/main.ts", content: "export const answer = 42;\n".repeat(50) },
    { path: "dïr/ünï.txt", content: "" },
    { path: "docs", type: "directory" as const },
  ];
  for (const store of [false, true]) {
    const zip = buildZip(files, { store });
    const view = new DataView(zip.buffer);
    const directoryAt = view.getUint32(zip.byteLength - 22 + 16, true); // the end record's offset field
    for (const chunk of [1, 7, 1000, zip.byteLength]) {
      const { entries, reader } = readAll(zip, chunk);
      const seen = entries.map((e) => [e.name, text(contentOf(e))]);
      assert.deepEqual(seen, [
        ["README.md", "# Demo\n"],
        ["src/main.ts", "export const answer = 42;\n".repeat(50)],
        ["dïr/ünï.txt", ""],
        ["docs/", ""],
      ], `store ${store}, chunks of ${chunk}`);
      assert.equal(reader.directory()?.at, directoryAt);
    }
  }
});

Deno.test("ZipEntryReader finds where data ends by its data descriptor, even when the data holds the descriptor's signature", () => {
  const tricky = utf8.encode("before PK\x07\x08 after, and PK\x07\x08\x00\x00\x00\x00 again\n");
  const zip = streamedZip([
    { path: "tricky.bin", content: tricky, store: true },
    { path: "big.ts", content: utf8.encode("let x = 1;\n".repeat(5000)) },
    { path: "last.txt", content: utf8.encode("the end\n"), store: true },
  ]);
  for (const chunk of [3, 64, 4096, zip.byteLength]) {
    const { entries } = readAll(zip, chunk);
    assert.deepEqual(entries.map((e) => [e.name, e.size]), [
      ["tricky.bin", tricky.byteLength],
      ["big.ts", 55_000],
      ["last.txt", 8],
    ], `chunks of ${chunk}`);
    assert.deepEqual(contentOf(entries[0]), tricky);
    assert.equal(text(contentOf(entries[1])), "let x = 1;\n".repeat(5000));
  }
});

/** A local header for "a.txt" with a zip64 extra field: `flags`, the header's two sizes, the field's two. */
function zip64Header(flags: number, headerSize: number, fieldSize: bigint): Uint8Array {
  const name = utf8.encode("a.txt");
  const header = new Uint8Array(30 + name.byteLength + 20);
  const h = new DataView(header.buffer);
  h.setUint32(0, 0x04034b50, true);
  h.setUint16(4, 45, true);
  h.setUint16(6, flags, true);
  h.setUint32(18, headerSize, true); // stored size
  h.setUint32(22, headerSize, true); // inflated size
  h.setUint16(26, name.byteLength, true);
  h.setUint16(28, 20, true);
  header.set(name, 30);
  const extra = 30 + name.byteLength;
  h.setUint16(extra, 0x0001, true);
  h.setUint16(extra + 2, 16, true);
  h.setBigUint64(extra + 4, fieldSize, true);
  h.setBigUint64(extra + 12, fieldSize, true);
  return header;
}

const END_RECORD = new Uint8Array(22);
new DataView(END_RECORD.buffer).setUint32(0, 0x06054b50, true);

Deno.test("ZipEntryReader reads zip64 sizes from the extra field, and 8-byte sizes in a descriptor after one", () => {
  const data = utf8.encode("hello");
  const inField = readAll(concatBytes([zip64Header(0, 0xffffffff, 5n), data, END_RECORD]), 4);
  assert.deepEqual(inField.entries.map((e) => [e.name, e.size, text(e.data)]), [["a.txt", 5, "hello"]]);

  // sizes 0 in the header and the field, then a descriptor: signature, CRC-32, 8-byte sizes
  const descriptor = new Uint8Array(24);
  const d = new DataView(descriptor.buffer);
  d.setUint32(0, 0x08074b50, true);
  d.setBigUint64(8, 5n, true);
  d.setBigUint64(16, 5n, true);
  const streamed = readAll(concatBytes([zip64Header(0x8, 0, 0n), data, descriptor, END_RECORD]), 3);
  assert.deepEqual(streamed.entries.map((e) => [e.name, e.size, text(e.data)]), [["a.txt", 5, "hello"]]);
});

Deno.test("ZipEntryReader keeps no more than it is asked, and refuses bytes that are no zip or are cut short", () => {
  const zip = buildZip(
    [{ path: "big.txt", content: "x".repeat(5000) }, { path: "small.txt", content: "y" }],
    {
      store: true,
    },
  );
  const { entries } = readAll(zip, 512, 1000);
  assert.deepEqual(entries.map((e) => [e.name, e.data?.byteLength ?? null]), [["big.txt", null], [
    "small.txt",
    1,
  ]]);
  assert.deepEqual(entries.map((e) => e.encrypted), [false, false]);
  const flagged = zip.slice();
  flagged[6] |= 1; // the first entry's "encrypted" flag
  assert.deepEqual(readAll(flagged, 512, 1000).entries.map((e) => e.encrypted), [true, false]);

  const cut = new ZipEntryReader(1 << 20);
  cut.push(zip.subarray(0, 100));
  assert.throws(() => cut.end(), ZipFormatError);
  // the second entry's header no longer starts with its signature
  const broken = zip.slice();
  broken[30 + "big.txt".length + 5000] ^= 0xff;
  assert.throws(() => readAll(broken, 512), ZipFormatError);
});

Deno.test("inflateEntry stops past the limit, whatever the header says, and refuses corrupt data", () => {
  const zeros = deflateRawSync(new Uint8Array(64 << 20)); // 64 MiB of zeros in ~64 KB
  assert.equal(inflateEntry(zeros, 100, 1 << 20), TOO_LARGE);
  const source = utf8.encode("const a = 1;\n".repeat(1000));
  assert.deepEqual(
    inflateEntry(deflateRawSync(source), 3, 1 << 20),
    source,
    "a header that lies about the size",
  );
  assert.throws(() => inflateEntry(utf8.encode("not deflate at all"), 10, 1 << 20), ZipFormatError);
});
