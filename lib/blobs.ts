/**
 * Values larger than one KV value (64 KiB), stored as parts under a base key.
 * Layout: parts at [...base, i], then the metadata at [...base]. The metadata write is the commit
 * point: a reader that finds metadata finds every part, and a reader never sees half a blob.
 * A small blob is its bytes alone at the base key (one KV value, one mutation): KV stores a byte
 * array as it is, where an object is serialised by V8 first.
 */
import { KvBatch } from "./kv_util.ts";

export const PART_BYTES = 60 * 1024;

export interface BlobMeta {
  size: number;
  parts: number;
  inline?: Uint8Array;
}

/**
 * `bytes` in a buffer of its own: a view queued on a batch would keep its whole buffer (the 64 KB
 * upload chunk a small stored zip entry is a view of) until the commit, and would change with it.
 */
function ownBuffer(bytes: Uint8Array): Uint8Array {
  // a copy (not bytes.slice(): an upload's bytes may be a Node Buffer, whose slice is a view)
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
    ? bytes
    : new Uint8Array(bytes);
}

/** Queues the writes for one blob on `batch`; the caller's `flush` commits them. */
export async function writeBlob(
  batch: Pick<KvBatch, "set">,
  base: Deno.KvKey,
  bytes: Uint8Array,
  expireIn?: number,
): Promise<void> {
  if (bytes.byteLength <= PART_BYTES) {
    await batch.set(base, ownBuffer(bytes), expireIn);
    return;
  }
  const parts = Math.ceil(bytes.byteLength / PART_BYTES);
  for (let i = 0; i < parts; i++) {
    await batch.set([...base, i], bytes.subarray(i * PART_BYTES, (i + 1) * PART_BYTES), expireIn);
  }
  await batch.set(base, { size: bytes.byteLength, parts } satisfies BlobMeta, expireIn);
}

/**
 * Queues the writes for one blob given as chunks, one after another, as {@link writeBlob} lays
 * them out: a large value built piece by piece (a repository's tree as JSON) is never held whole.
 */
export async function writeBlobFrom(
  batch: Pick<KvBatch, "set">,
  base: Deno.KvKey,
  chunks: Iterable<Uint8Array>,
): Promise<void> {
  let part = new Uint8Array(PART_BYTES);
  let filled = 0;
  let parts = 0;
  for (const chunk of chunks) {
    for (let at = 0; at < chunk.byteLength;) {
      if (filled === PART_BYTES) {
        await batch.set([...base, parts++], part);
        part = new Uint8Array(PART_BYTES);
        filled = 0;
      }
      const n = Math.min(PART_BYTES - filled, chunk.byteLength - at);
      part.set(chunk.subarray(at, at + n), filled);
      filled += n;
      at += n;
    }
  }
  const size = parts * PART_BYTES + filled;
  if (parts === 0) {
    await batch.set(base, part.slice(0, filled));
    return;
  }
  await batch.set([...base, parts++], part.subarray(0, filled));
  await batch.set(base, { size, parts } satisfies BlobMeta);
}

/** Queues the deletes of a blob that `writeBlob` queued or wrote on `batch` with `size` bytes. */
export async function dropBlob(batch: KvBatch, base: Deno.KvKey, size: number): Promise<void> {
  await batch.delete(base);
  const parts = size <= PART_BYTES ? 0 : Math.ceil(size / PART_BYTES);
  for (let i = 0; i < parts; i++) await batch.delete([...base, i]);
}

/** Writes one blob and commits it. */
export async function putBlob(
  kv: Deno.Kv,
  base: Deno.KvKey,
  bytes: Uint8Array,
  expireIn?: number,
): Promise<void> {
  const batch = new KvBatch(kv);
  await writeBlob(batch, base, bytes, expireIn);
  await batch.flush();
}

/** The blob's metadata, or null when no complete blob is stored at `base`. */
export async function getBlobMeta(kv: Deno.Kv, base: Deno.KvKey): Promise<BlobMeta | null> {
  const { value } = await kv.get<BlobMeta | Uint8Array>(base);
  // (metadata with its bytes inline is how small blobs were stored before: they read the same)
  return value instanceof Uint8Array ? { size: value.byteLength, parts: 0, inline: value } : value;
}

/** Streams the bytes from `start` to `end` (exclusive) of a blob, reading parts as they are pulled. */
export function streamBlob(kv: Deno.Kv, base: Deno.KvKey, meta: BlobMeta, start = 0, end = meta.size) {
  if (meta.inline) {
    return new ReadableStream<Uint8Array>({
      start(c) {
        if (end > start) c.enqueue(meta.inline!.subarray(start, end));
        c.close();
      },
    });
  }
  let part = Math.floor(start / PART_BYTES);
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      const partStart = part * PART_BYTES;
      if (partStart >= end) return c.close();
      const entry = await kv.get<Uint8Array>([...base, part]);
      if (!entry.value) return c.error(new Error(`blob part ${part} is missing`));
      const from = Math.max(0, start - partStart);
      const to = Math.min(entry.value.byteLength, end - partStart);
      c.enqueue(entry.value.subarray(from, to));
      part++;
    },
  }, { highWaterMark: 0 });
}

/** Reads a whole blob into memory (for values known to be small enough, such as one file). */
export async function readBlob(
  kv: Deno.Kv,
  base: Deno.KvKey,
  meta?: BlobMeta | null,
): Promise<Uint8Array | null> {
  meta ??= await getBlobMeta(kv, base);
  if (!meta) return null;
  if (meta.inline) return meta.inline;
  const out = new Uint8Array(meta.size);
  for (let first = 0; first < meta.parts; first += 10) {
    const partKeys = [];
    for (let i = first; i < Math.min(meta.parts, first + 10); i++) partKeys.push([...base, i]);
    const entries = await kv.getMany<Uint8Array[]>(partKeys);
    for (const [j, entry] of entries.entries()) {
      if (!entry.value) throw new Error(`blob part ${first + j} is missing`);
      out.set(entry.value, (first + j) * PART_BYTES);
    }
  }
  return out;
}
