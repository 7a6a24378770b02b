/**
 * Which entries of a zip are Unix symlinks. A zip says so only in its central directory, at its
 * very end (the entry's "external attributes"); the local headers a streaming reader sees first
 * do not. So the reader keeps the archive's last bytes as they pass, and reads the central
 * directory from them once the stream ends; ingest then drops those entries (they were stored as
 * files whose content is the link's target) and records them as skipped symlinks.
 */
import { concatBytes } from "./bytes.ts";

/**
 * Bytes kept from the end of a zip, where its central directory must fit for its symlinks to be
 * found: 50,000 entries (MAX_FILES) with 100-byte names take ~7 MB.
 */
const TAIL_BYTES = 8 * 1024 * 1024;

const END_OF_DIRECTORY = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_END_OF_DIRECTORY = 0x06064b50;
const DIRECTORY_ENTRY = 0x02014b50;
const UNIX = 3;
const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;
const UTF8_NAMES = 0x800;

/** Why the central directory could not be read. */
export class ZipDirectoryError extends Error {}

export class ZipTail {
  #chunks: Uint8Array[] = [];
  #kept = 0;
  #total = 0;

  constructor(private readonly keep = TAIL_BYTES) {}

  /** Passes over `bytes` bytes of the archive, keeping none (those before its central directory). */
  skip(bytes: number): void {
    this.#total += bytes;
  }

  /**
   * Notes a chunk of the archive, in order, keeping only the last `keep` bytes (at least), in
   * copies: a chunk may be a view of a larger buffer (an upload's parts are), which it would keep.
   */
  push(chunk: Uint8Array): void {
    this.#chunks.push(chunk.slice());
    this.#kept += chunk.byteLength;
    this.#total += chunk.byteLength;
    while (this.#kept - this.#chunks[0].byteLength >= this.keep) {
      this.#kept -= this.#chunks.shift()!.byteLength;
    }
  }

  /**
   * The names (as the local headers give them) of the entries the central directory marks as
   * symlinks. A directory that does not fit in the bytes kept is not read: its symlinks stay the
   * small text files (the link's target) they were read as, which are never followed.
   */
  symlinks(): string[] {
    const tail = concatBytes(this.#chunks, this.#kept);
    const view = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
    const base = this.#total - tail.byteLength;
    const end = findEndOfDirectory(view);
    let size = view.getUint32(end + 12, true);
    let offset = view.getUint32(end + 16, true);
    if (size === 0xffffffff || offset === 0xffffffff) {
      const zip64 = zip64Directory(view, end, base);
      if (!zip64) return [];
      [size, offset] = zip64;
    }
    let at = offset - base;
    const stop = at + size;
    if (at < 0) return [];
    if (stop > tail.byteLength) throw new ZipDirectoryError("its central directory is cut short");
    const names: string[] = [];
    while (at < stop) {
      if (at + 46 > stop || view.getUint32(at, true) !== DIRECTORY_ENTRY) {
        throw new ZipDirectoryError("its central directory is corrupt");
      }
      const madeBy = view.getUint16(at + 4, true) >> 8;
      const flags = view.getUint16(at + 8, true);
      const nameLength = view.getUint16(at + 28, true);
      const mode = view.getUint32(at + 38, true) >>> 16;
      if (madeBy === UNIX && (mode & S_IFMT) === S_IFLNK) {
        names.push(decodeName(tail.subarray(at + 46, at + 46 + nameLength), flags));
      }
      at += 46 + nameLength + view.getUint16(at + 30, true) + view.getUint16(at + 32, true);
    }
    return names;
  }
}

/** The end-of-central-directory record: the last one in the final 22 bytes + a comment of up to 64 KiB. */
function findEndOfDirectory(view: DataView): number {
  for (let at = view.byteLength - 22; at >= Math.max(0, view.byteLength - 22 - 0xffff); at--) {
    if (view.getUint32(at, true) === END_OF_DIRECTORY) return at;
  }
  throw new ZipDirectoryError("it has no central directory");
}

/**
 * Size and offset of the central directory from the zip64 records before the end record; null
 * when those are before the bytes kept.
 */
function zip64Directory(view: DataView, end: number, base: number): [number, number] | null {
  const locator = end - 20;
  if (locator < 0 || view.getUint32(locator, true) !== ZIP64_LOCATOR) {
    throw new ZipDirectoryError("its zip64 records are missing");
  }
  const record = Number(view.getBigUint64(locator + 8, true)) - base;
  if (record < 0) return null;
  if (record + 56 > view.byteLength || view.getUint32(record, true) !== ZIP64_END_OF_DIRECTORY) {
    throw new ZipDirectoryError("its zip64 records are corrupt");
  }
  return [Number(view.getBigUint64(record + 40, true)), Number(view.getBigUint64(record + 48, true))];
}

/** Names are UTF-8 when the entry's flag says so, else read byte for byte (one character per byte). */
export function decodeName(bytes: Uint8Array, flags: number): string {
  if (flags & UTF8_NAMES) return new TextDecoder().decode(bytes);
  let name = "";
  for (const b of bytes) name += String.fromCharCode(b);
  return name;
}
