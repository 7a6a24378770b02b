import assert from "node:assert/strict";
import { ZipDirectoryError, ZipTail } from "../../lib/zip_symlinks.ts";
import { buildZip } from "../fakes/archives.ts";

const ENTRIES = [
  { path: "README.md", content: "hi\n" },
  { path: "passwd", type: "symlink" as const, linkTarget: "/etc/passwd" },
  { path: "src/main.ts", content: "export {};\n" },
  { path: "dïr/ünï-link", type: "symlink" as const, linkTarget: "../.." },
  { path: "docs", type: "directory" as const },
];

/** The symlinks ZipTail finds in `zip`, pushed in chunks of `chunk` bytes. */
function symlinksOf(zip: Uint8Array, chunk = 7, keep?: number): string[] {
  const tail = new ZipTail(keep);
  for (let i = 0; i < zip.byteLength; i += chunk) tail.push(zip.subarray(i, i + chunk));
  return tail.symlinks();
}

/** The same zip with its end records rewritten as zip64 ones (size and offset 0xFFFFFFFF in the classic record). */
function asZip64(zip: Uint8Array): Uint8Array {
  const view = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  const end = zip.byteLength - 22; // buildZip writes no comment
  assert.equal(view.getUint32(end, true), 0x06054b50);
  const size = view.getUint32(end + 12, true);
  const offset = view.getUint32(end + 16, true);
  const out = new Uint8Array(end + 56 + 20 + 22);
  out.set(zip.subarray(0, end));
  const o = new DataView(out.buffer);
  o.setUint32(end, 0x06064b50, true); // zip64 end of central directory
  o.setBigUint64(end + 4, 44n, true);
  o.setBigUint64(end + 40, BigInt(size), true);
  o.setBigUint64(end + 48, BigInt(offset), true);
  o.setUint32(end + 56, 0x07064b50, true); // its locator
  o.setBigUint64(end + 56 + 8, BigInt(end), true);
  out.set(zip.subarray(end), end + 76);
  o.setUint32(end + 76 + 12, 0xffffffff, true);
  o.setUint32(end + 76 + 16, 0xffffffff, true);
  return out;
}

Deno.test("ZipTail names exactly the entries the central directory marks as symlinks", () => {
  const zip = buildZip(ENTRIES);
  assert.deepEqual(symlinksOf(zip).sort(), ["dïr/ünï-link", "passwd"]);
  assert.deepEqual(symlinksOf(zip, zip.byteLength), symlinksOf(zip, 3));
  assert.deepEqual(symlinksOf(buildZip([{ path: "a.txt", content: "a" }])), []);
});

Deno.test("ZipTail finds no symlinks in a central directory larger than what it keeps (they stay text files)", () => {
  const zip = buildZip(ENTRIES);
  const end = zip.byteLength - 22;
  const directory = zip.byteLength - new DataView(zip.buffer).getUint32(end + 16, true);
  assert.deepEqual(symlinksOf(zip, 7, directory).sort(), ["dïr/ünï-link", "passwd"]);
  assert.deepEqual(symlinksOf(zip, 1, directory - 30), []);
  assert.deepEqual(symlinksOf(asZip64(zip), 1, 120), []); // the zip64 record kept, not the directory
  assert.deepEqual(symlinksOf(asZip64(zip), 1, 60), []); // nor the zip64 record
});

Deno.test("ZipTail reads zip64 end records", () => {
  assert.deepEqual(symlinksOf(asZip64(buildZip(ENTRIES))).sort(), ["dïr/ünï-link", "passwd"]);
});

Deno.test("ZipTail refuses a zip whose central directory is missing or cut", () => {
  const zip = buildZip(ENTRIES);
  const end = zip.byteLength - 22;
  const offset = new DataView(zip.buffer).getUint32(end + 16, true);
  assert.throws(() => symlinksOf(zip.subarray(0, offset)), ZipDirectoryError);
  const corrupt = zip.slice();
  corrupt[offset] ^= 0xff; // the first directory entry's signature
  assert.throws(() => symlinksOf(corrupt), /corrupt/);
});
