/**
 * A zip's entries, read from their local headers as the bytes stream past (the central directory,
 * which comes last, is lib/zip_symlinks.ts's). Written here rather than taken from fflate's
 * `Unzip`, which looks at the bytes after an entry one at a time while allocating: V8's heap grew
 * by ~50 MB over the central directory of a zip of 20,000 small files, and over every byte of a
 * zip whose entries end in data descriptors (macOS's, and any streaming writer's).
 */
import { inflateRawSync } from "node:zlib";
import { concatBytes } from "./bytes.ts";
import { decodeName } from "./zip_symlinks.ts";

const LOCAL_HEADER = 0x04034b50;
const DATA_DESCRIPTOR = 0x08074b50;
/**
 * Records that come after the last entry: the central directory and its digital signature, the
 * archive extra data record before it, the zip64 end records and the end record.
 */
const AFTER_ENTRIES = new Set([0x02014b50, 0x05054b50, 0x08064b50, 0x06064b50, 0x07064b50, 0x06054b50]);
const ENCRYPTED = 0x1;
const HAS_DESCRIPTOR = 0x8;
const ZIP64_EXTRA = 0x0001;
const SIZE_IN_ZIP64 = 0xffffffff;

/** Bytes that are not a zip, or a zip cut short. */
export class ZipFormatError extends Error {}

export interface ZipEntry {
  name: string;
  /** 0: stored, 8: deflated; anything else is not read. */
  method: number;
  encrypted: boolean;
  /** The entry's bytes as stored (compressed); null when they were more than the reader keeps. */
  data: Uint8Array | null;
  /** The inflated size the header gives (0 when a data descriptor follows); may lie. */
  size: number;
}

interface Open {
  entry: Omit<ZipEntry, "data">;
  kept: Uint8Array[];
  /** Bytes of data seen so far, kept or not. */
  seen: number;
  /** Bytes of data still to come; -1 while a data descriptor (of 8-byte sizes when zip64) marks the end. */
  remaining: number;
  zip64: boolean;
}

const u16 = (b: Uint8Array, at: number) => b[at] | (b[at + 1] << 8);
const u32 = (b: Uint8Array, at: number) =>
  (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
const u64 = (b: Uint8Array, at: number) => u32(b, at) + u32(b, at + 4) * 2 ** 32;

/** Reads entries from a zip's bytes, pushed in order; keeps an entry's data only up to `maxKept` bytes. */
export class ZipEntryReader {
  /** Bytes not yet read: a header still arriving, or the end of some data. */
  #pending: Uint8Array = new Uint8Array(0);
  #open: Open | null = null;
  /** Bytes pushed so far. */
  #offset = 0;
  #directory: { at: number; bytes: Uint8Array } | null = null;

  /**
   * Once the entries end: where the records after them (the central directory …) start in the
   * zip, and the bytes of them pushed so far; null until then. Later chunks are not the reader's.
   */
  directory(): { at: number; bytes: Uint8Array } | null {
    return this.#directory;
  }

  constructor(private readonly maxKept: number) {}

  /** The entries that `chunk` completes. */
  push(chunk: Uint8Array): ZipEntry[] {
    if (this.#directory) throw new Error("the entries have ended");
    this.#offset += chunk.byteLength;
    this.#pending = this.#pending.byteLength ? concatBytes([this.#pending, chunk]) : chunk;
    const entries: ZipEntry[] = [];
    for (;;) {
      const entry = this.#open ? this.#readData(this.#open) : this.#readHeader();
      if (entry === undefined) return entries;
      if (entry) entries.push(entry);
      if (this.#directory) return entries;
    }
  }

  /** At the end of the bytes: throws when an entry, or its header, was cut short. */
  end(): void {
    if (this.#open || this.#pending.byteLength) throw new ZipFormatError("it is truncated");
  }

  /** Opens the next entry (null: opened, its data to come); undefined when more bytes are needed. */
  #readHeader(): ZipEntry | null | undefined {
    const b = this.#pending;
    if (b.byteLength < 4) return undefined;
    const signature = u32(b, 0);
    if (AFTER_ENTRIES.has(signature)) {
      this.#directory = { at: this.#offset - b.byteLength, bytes: b };
      this.#pending = new Uint8Array(0);
      return null;
    }
    if (signature !== LOCAL_HEADER) throw new ZipFormatError("it is corrupt");
    if (b.byteLength < 30) return undefined;
    const flags = u16(b, 6);
    const nameLength = u16(b, 26);
    const extraLength = u16(b, 28);
    const end = 30 + nameLength + extraLength;
    if (b.byteLength < end) return undefined;
    let stored = u32(b, 18);
    let size = u32(b, 22);
    const extra = b.subarray(30 + nameLength, end);
    if (stored === SIZE_IN_ZIP64 || size === SIZE_IN_ZIP64) [size, stored] = zip64Sizes(extra, size, stored);
    // with a zip64 field, a data descriptor's sizes are 8 bytes each, whatever the header's say
    const zip64 = zip64Field(extra) >= 0;
    const entry = {
      name: decodeName(b.subarray(30, 30 + nameLength), flags),
      method: u16(b, 8),
      encrypted: (flags & ENCRYPTED) !== 0,
      size,
    };
    this.#pending = b.subarray(end);
    const descriptor = (flags & HAS_DESCRIPTOR) !== 0;
    this.#open = { entry, kept: [], seen: 0, remaining: descriptor ? -1 : stored, zip64 };
    return null;
  }

  /** Reads the open entry's data: the entry when it ends here, else undefined (more bytes needed). */
  #readData(open: Open): ZipEntry | undefined {
    const b = this.#pending;
    if (open.remaining >= 0) {
      const n = Math.min(open.remaining, b.byteLength);
      this.#keep(open, b.subarray(0, n));
      open.remaining -= n;
      this.#pending = b.subarray(n);
      return open.remaining === 0 ? this.#close(open) : undefined;
    }
    // a descriptor: its signature (optional), CRC-32, then the stored and inflated sizes
    const descriptorBytes = open.zip64 ? 24 : 16;
    const sizeAt = (at: number) => (open.zip64 ? u64(b, at) : u32(b, at));
    for (let at = 0; at + descriptorBytes <= b.byteLength; at++) {
      if (b[at] !== 0x50) continue;
      const signature = u32(b, at);
      // where the data would end, and the descriptor's sizes start
      let dataEnd: number;
      if (signature === DATA_DESCRIPTOR) dataEnd = at;
      else if (signature === LOCAL_HEADER || AFTER_ENTRIES.has(signature)) dataEnd = at - descriptorBytes + 4;
      else continue;
      const sizes = signature === DATA_DESCRIPTOR ? at + 8 : dataEnd + 4;
      const stored = open.seen + dataEnd;
      if (dataEnd < 0 || sizeAt(sizes) !== (open.zip64 ? stored : stored % 2 ** 32)) continue;
      open.entry.size = sizeAt(sizes + (open.zip64 ? 8 : 4));
      this.#keep(open, b.subarray(0, dataEnd));
      this.#pending = b.subarray(signature === DATA_DESCRIPTOR ? at + descriptorBytes : at);
      return this.#close(open);
    }
    // all but the bytes a descriptor starting here could still need
    const safe = Math.max(0, b.byteLength - descriptorBytes + 1);
    this.#keep(open, b.subarray(0, safe));
    this.#pending = b.slice(safe);
    return undefined;
  }

  #keep(open: Open, data: Uint8Array): void {
    if (!data.byteLength) return;
    open.seen += data.byteLength;
    if (open.seen <= this.maxKept) open.kept.push(data);
    else open.kept = [];
  }

  #close(open: Open): ZipEntry {
    this.#open = null;
    const data = open.seen <= this.maxKept ? concatBytes(open.kept, open.seen) : null;
    return { ...open.entry, data };
  }
}

/** Where the zip64 field starts among an entry's extra fields (its id), or -1. */
function zip64Field(extra: Uint8Array): number {
  for (let at = 0; at + 4 <= extra.byteLength; at += 4 + u16(extra, at + 2)) {
    if (u16(extra, at) === ZIP64_EXTRA) return at;
  }
  return -1;
}

/** The sizes a zip64 extra field holds in place of those the header marks 0xFFFFFFFF. */
function zip64Sizes(extra: Uint8Array, size: number, stored: number): [number, number] {
  const at = zip64Field(extra);
  if (at >= 0) {
    const end = at + 4 + u16(extra, at + 2);
    let field = at + 4;
    if (size === SIZE_IN_ZIP64 && field + 8 <= end) {
      size = u64(extra, field);
      field += 8;
    }
    if (stored === SIZE_IN_ZIP64 && field + 8 <= end) stored = u64(extra, field);
  }
  if (size === SIZE_IN_ZIP64 || stored === SIZE_IN_ZIP64) throw new ZipFormatError("it is corrupt");
  return [size, stored];
}

/** Handed back for an entry whose inflated size is past the limit: its bytes are not kept. */
export const TOO_LARGE = new Uint8Array(0);

/**
 * An entry's deflated bytes inflated, by node:zlib's native inflate, which stops past
 * `maxEntryBytes` (then TOO_LARGE); throws on corrupt data. Its output buffer is sized for the
 * `size` the header gives: with its default size, 20,000 inflates of 2.7 KB each peaked at 51 MB
 * outside V8's heap, against 10 MB sized (fflate's streaming inflate made a 32 KB window and an
 * output grown to 64 KB per entry). A header that lies costs more buffers, not a wrong result.
 */
export function inflateEntry(deflated: Uint8Array, size: number, maxEntryBytes: number): Uint8Array {
  const chunkSize = size > 0 ? Math.min(size, maxEntryBytes) + 64 : 16 * 1024;
  let out: Uint8Array;
  try {
    out = inflateRawSync(deflated, { maxOutputLength: maxEntryBytes, chunkSize });
  } catch (e) {
    if (e instanceof RangeError) return TOO_LARGE;
    throw new ZipFormatError("it is corrupt");
  }
  // a plain byte array over the Buffer's own memory (no copy)
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}
