/**
 * Reads .tar.gz, .tar and .zip archives as a stream of entries, never holding the archive in
 * memory: bytes flow response → gunzip → untar (or unzip) → caller. A file's content is read only
 * when it is within `maxEntryBytes`; decompressed bytes are counted so a bomb stops early.
 */
import { createTarDecoder } from "modern-tar";
import { concatBytes } from "./bytes.ts";
import { AppError, PermanentJobError } from "./errors.ts";
import { inflateEntry, TOO_LARGE, type ZipEntry, ZipEntryReader, ZipFormatError } from "./zip_entries.ts";
import { ZipDirectoryError, ZipTail } from "./zip_symlinks.ts";

export interface ArchiveEntry {
  /** The path as the archive states it (not yet checked or normalised). */
  path: string;
  kind: "file" | "directory" | "symlink" | "other";
  size: number;
  /** The bytes of a file within the entry limit; null for larger files and non-files. */
  content: Uint8Array | null;
}

export interface ReadOptions {
  maxEntryBytes: number;
  maxDecompressedBytes: number;
}

export type ArchiveFormat = "tar.gz" | "tar" | "zip";

/** An archive that cannot be read: corrupt, truncated, or not an archive at all. */
export function invalidArchive(detail: string): PermanentJobError {
  return new PermanentJobError("invalid_archive", `The archive could not be read: ${detail}.`, 400);
}

/** A byte count for people: "50 MB", "64 KB", "900 bytes" (limits in messages must not read "0 MB"). */
export function formatBytes(n: number): string {
  if (n >= 1048576) return `${Math.round((n / 1048576) * 10) / 10} MB`;
  if (n >= 1024) return `${Math.round((n / 1024) * 10) / 10} KB`;
  return `${n} bytes`;
}

function tooLarge(limit: number): PermanentJobError {
  return new PermanentJobError(
    "repo_too_large",
    `The repository is larger than the limit of ${formatBytes(limit)} of uncompressed data.`,
    422,
  );
}

/** Identifies the format from the first bytes (at least 262 are needed to see a tar's magic). */
export function sniffFormat(head: Uint8Array): ArchiveFormat | null {
  if (head[0] === 0x1f && head[1] === 0x8b) return "tar.gz";
  if (head[0] === 0x50 && head[1] === 0x4b && (head[2] === 3 || head[2] === 5)) return "zip";
  const magic = new TextDecoder().decode(head.subarray(257, 262));
  if (magic === "ustar") return "tar";
  return null;
}

/** Reads just enough of a stream to sniff its format, and returns a stream that still starts at byte 0. */
async function peek(
  input: ReadableStream<Uint8Array>,
): Promise<{ head: Uint8Array; stream: ReadableStream<Uint8Array> }> {
  const reader = input.getReader();
  const chunks: Uint8Array[] = [];
  let length = 0;
  while (length < 512) {
    const { value, done } = await reader.read();
    if (done) break;
    chunks.push(value);
    length += value.byteLength;
  }
  const head = concatBytes(chunks, length);
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      if (head.byteLength) c.enqueue(head);
    },
    async pull(c) {
      const { value, done } = await reader.read();
      if (done) c.close();
      else c.enqueue(value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
  return { head, stream };
}

/** Counts bytes flowing through and errors the stream once more than `limit` have passed. */
function byteLimit(limit: number): TransformStream<Uint8Array, Uint8Array> {
  let total = 0;
  return new TransformStream({
    transform(chunk, c) {
      total += chunk.byteLength;
      if (total > limit) c.error(tooLarge(limit));
      else c.enqueue(chunk);
    },
  });
}

/** Yields the entries of an archive in order. Errors are typed: invalid_archive or repo_too_large. */
export async function* readArchive(
  input: ReadableStream<Uint8Array>,
  options: ReadOptions,
): AsyncGenerator<ArchiveEntry> {
  const { head, stream } = await peek(input);
  const format = sniffFormat(head);
  if (!format) {
    await stream.cancel();
    throw invalidArchive(head.byteLength === 0 ? "it is empty" : "it is not a .tar.gz, .tar or .zip file");
  }
  if (format === "zip") {
    yield* readZip(stream, options);
    return;
  }
  let tarBytes = stream;
  if (format === "tar.gz") {
    tarBytes = stream.pipeThrough(new DecompressionStream("gzip") as TransformStream<Uint8Array, Uint8Array>);
  }
  yield* readTar(tarBytes.pipeThrough(byteLimit(options.maxDecompressedBytes)), options);
}

const TAR_KINDS: Record<string, ArchiveEntry["kind"]> = {
  file: "file",
  directory: "directory",
  symlink: "symlink",
  link: "symlink",
};

async function* readTar(
  bytes: ReadableStream<Uint8Array>,
  options: ReadOptions,
): AsyncGenerator<ArchiveEntry> {
  const entries = bytes.pipeThrough(createTarDecoder({ strict: true }));
  const reader = entries.getReader();
  try {
    for (let next; !(next = await readArchiveChunk(reader)).done;) {
      const { header, body } = next.value;
      const kind = TAR_KINDS[header.type ?? "file"] ?? "other";
      let content: Uint8Array | null = null;
      try {
        if (kind === "file" && header.size <= options.maxEntryBytes) {
          content = await readBody(body, header.size);
        } else {
          await body.pipeTo(new WritableStream());
        }
      } catch (e) {
        throw asArchiveError(e);
      }
      yield { path: header.name, kind, size: header.size, content };
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}

/**
 * A tar entry's body, as long as its header says, in a buffer of its own. Read with a reader that
 * is never released (the body is done with): releasing one makes TypeErrors for the stream's
 * `closed` promise, stack traces and all, which over 20,000 entries took ~0.1 s of the ingest.
 */
async function readBody(body: ReadableStream<Uint8Array>, size: number): Promise<Uint8Array> {
  const content = new Uint8Array(size);
  let filled = 0;
  const reader = body.getReader();
  for (let next; !(next = await reader.read()).done;) {
    const chunk = next.value;
    if (filled + chunk.byteLength > size) throw invalidArchive("it is corrupt");
    content.set(chunk, filled);
    filled += chunk.byteLength;
  }
  if (filled < size) throw invalidArchive("it is truncated");
  return content;
}

/** The next read from an archive's stream; a failure is the archive's (invalid_archive, repo_too_large). */
async function readArchiveChunk<T>(
  reader: ReadableStreamDefaultReader<T>,
): Promise<ReadableStreamReadResult<T>> {
  try {
    return await reader.read();
  } catch (e) {
    throw asArchiveError(e);
  }
}

function asArchiveError(e: unknown): Error {
  if (e instanceof AppError) return e;
  const detail = e instanceof Error ? e.message : String(e);
  return invalidArchive(/end|truncat|unexpected/i.test(detail) ? "it is truncated" : "it is corrupt");
}

function symlinksOf(tail: ZipTail): string[] {
  try {
    return tail.symlinks();
  } catch (e) {
    throw invalidArchive(e instanceof ZipDirectoryError ? e.message : "it is corrupt");
  }
}

/**
 * A zip's entries as they stream past; then, as `symlink` entries, those its central directory
 * marks as symlinks (already yielded as files: see lib/zip_symlinks.ts).
 */
async function* readZip(
  stream: ReadableStream<Uint8Array>,
  options: ReadOptions,
): AsyncGenerator<ArchiveEntry> {
  // deflate never needs much more than a file's own size: twice it is surely too large
  const entries = new ZipEntryReader(2 * options.maxEntryBytes + 1024);
  const tail = new ZipTail();
  let decompressed = 0;
  const read = (entry: ZipEntry): ArchiveEntry => {
    const path = entry.name;
    if (path.endsWith("/")) return { path, kind: "directory", size: 0, content: null };
    if (entry.encrypted) throw invalidArchive("its entries are encrypted");
    if (entry.method !== 0 && entry.method !== 8) {
      return { path, kind: "other", size: entry.size, content: null };
    }
    const tooLargeFile = {
      path,
      kind: "file",
      size: Math.max(entry.size, options.maxEntryBytes + 1),
      content: null,
    } as const;
    // more bytes stored than any file within the limit needs: not inflated at all
    if (!entry.data) return tooLargeFile;
    const content = entry.method === 8
      ? inflateEntry(entry.data, entry.size, options.maxEntryBytes)
      : entry.data;
    // inflating stops past the limit
    decompressed += content === TOO_LARGE ? options.maxEntryBytes + 1 : content.byteLength;
    if (decompressed > options.maxDecompressedBytes) throw tooLarge(options.maxDecompressedBytes);
    if (content === TOO_LARGE || content.byteLength > options.maxEntryBytes) return tooLargeFile;
    return { path, kind: "file", size: content.byteLength, content };
  };
  const reader = stream.getReader();
  try {
    for (let next; !(next = await readArchiveChunk(reader)).done;) {
      if (entries.directory()) {
        tail.push(next.value);
        continue;
      }
      yield* zipEntries(() => entries.push(next.value).map(read));
      // the tail keeps only what follows the entries: the central directory and the end records
      const directory = entries.directory();
      if (directory) {
        tail.skip(directory.at);
        tail.push(directory.bytes);
      }
    }
    zipEntries(() => entries.end());
    // only now does the zip say which of the entries above were symlinks
    for (const path of symlinksOf(tail)) yield { path, kind: "symlink", size: 0, content: null };
  } finally {
    await reader.cancel().catch(() => {});
  }
}

/** What `read` gives, with a zip that cannot be read thrown as invalid_archive. */
function zipEntries<T>(read: () => T): T {
  try {
    return read();
  } catch (e) {
    throw e instanceof ZipFormatError ? invalidArchive(e.message) : e;
  }
}
