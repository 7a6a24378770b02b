/**
 * The ingest pipeline: archive entries → path checks → filters → file facts → KV, plus the
 * retrieval index and the tree, all in one streaming pass with bounded memory (and a second over the
 * stored files when an archive gives a path twice). It writes only under the repo's data
 * generation; the caller makes the repo visible when this returns.
 */
import { type ArchiveEntry, formatBytes, readArchive } from "./archive.ts";
import { dropBlob, getBlobMeta, readBlob, writeBlob, writeBlobFrom } from "./blobs.ts";
import { PermanentJobError } from "./errors.ts";
import { detectLanguage, filePriority } from "./file_info.ts";
import { writeFileNumbers } from "./file_numbers.ts";
import { contentFilter, type FilterOptions, pathFilter, type SkipReason } from "./filters.ts";
import { keys } from "./keys.ts";
import type { KvBatch } from "./kv_util.ts";
import { eventLoopPacer } from "./pacer.ts";
import { checkArchivePath, fitsPathLimit, isUnder } from "./paths.ts";
import type { RepoStats } from "./repos.ts";
import { IndexBuilder } from "./retrieval.ts";
import { countTokensInUtf8 } from "./tokens.ts";
import { type PlacedEntry, placeUnderTopFolder } from "./top_folder.ts";
import { utf8Length } from "./utf8.ts";

export interface IngestLimits {
  fileBytes: number;
  files: number;
  totalBytes: number;
  decompressedBytes: number;
  /** The paths the tree lists, stored and skipped, in UTF-8 bytes in all: the ingest holds them. */
  treeBytes: number;
}

export interface TreeFile {
  path: string;
  bytes: number;
  tokens: number;
  language: string;
  priority: number;
}

/** A stored file, and the number its blob is stored under, or null when under its path (`keys.repoFileByPath`). */
interface StoredFile {
  n: number | null;
  file: TreeFile;
}

/** Where a stored file's blob is. */
function blobKey({ repoId, gen }: IngestInput, { n, file }: StoredFile): Deno.KvKey {
  return n === null ? keys.repoFileByPath(repoId, gen, file.path) : keys.repoFileByNumber(repoId, gen, n);
}

export interface Tree {
  files: TreeFile[];
  skipped: { path: string; reason: SkipReason }[];
}

export interface IngestInput {
  /** Read from only when a file given again must be indexed afresh (see {@link reindex}). */
  kv: Deno.Kv;
  repoId: string;
  gen: string;
  archive: ReadableStream<Uint8Array>;
  /**
   * Leading folders to drop from every path: 1 for GitHub's codeload archives; "top" for uploads,
   * which drops the archive's top folder when every entry is under one (lib/top_folder.ts).
   */
  stripSegments: number | "top";
  filters: FilterOptions;
  limits: IngestLimits;
  /**
   * Carries the lease check, so a worker that lost its job writes nothing, and may have
   * {@link INGEST_COMMITS_IN_FLIGHT} commits in flight.
   */
  batch: KvBatch;
  signal: AbortSignal;
  onPhase?(phase: "indexing", done: number, total: number): Promise<void> | void;
}

export interface IngestResult {
  stats: RepoStats;
  indexShards: number;
}

/**
 * Commits an ingest's batch may have in flight (`KvBatch`'s `inFlight`): its writes are read only
 * after its last commit. With one, each commit was sent only at the JavaScript thread's next pause
 * after the one before landed, and KV's writer waited; with two, the synthetic 100 MB ingest takes
 * ~10 % less, and three gained little more for ~10 MB (docs/PERFORMANCE.md).
 */
export const INGEST_COMMITS_IN_FLIGHT = 2;

function tooLarge(what: string): PermanentJobError {
  return new PermanentJobError("repo_too_large", `The repository is larger than the limit of ${what}.`, 422);
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function decodeText(bytes: Uint8Array): string | null {
  try {
    return utf8.decode(bytes);
  } catch {
    return null;
  }
}

/** Every entry with the same fixed strip. */
async function* placeAll(entries: AsyncIterable<ArchiveEntry>, strip: number): AsyncGenerator<PlacedEntry> {
  for await (const entry of entries) yield { entry, checked: checkArchivePath(entry.path, strip) };
}

/** Runs the pipeline over one archive stream. Throws invalid_archive / repo_too_large on bad input. */
export async function ingestArchive(input: IngestInput): Promise<IngestResult> {
  const { limits, batch, repoId, gen } = input;
  const skipFor = pathFilter(input.filters);
  const index = new IndexBuilder(repoId, gen, batch);
  const tree: Tree = { files: [], skipped: [] };
  /** The stored files by path: a later entry for a path replaces an earlier one. */
  const stored = new Map<string, StoredFile>();
  /** The last path a file was stored under, and the next number for a file whose path comes before it. */
  let lastByPath = "";
  let nextNumber = 0;
  /** Paths whose stored file a later entry dropped (the index still holds its words). */
  const dropped = new Set<string>();
  /** Whether a file was stored under a path the index already took another file's words for. */
  let reindexNeeded = false;
  const stats: RepoStats = { files: 0, skipped: 0, bytes: 0, tokens: 0, languages: {} };
  let fileEntries = 0;
  let linkEntries = 0;
  // entries read from a buffered chunk follow each other with no pause for I/O
  const pace = eventLoopPacer();
  let storedBytes = 0;
  let treeBytes = 0;
  /** Counts a path the tree will list, once however often it is given. */
  const listed = (path: string) => {
    if (stored.has(path) || skipped.has(path)) return;
    treeBytes += utf8Length(path);
    if (treeBytes > limits.treeBytes) throw tooLarge(`${formatBytes(limits.treeBytes)} of file paths`);
  };
  /**
   * Skipped paths in the order skipped. As when a tar is extracted, the last entry for a path wins:
   * skipping a path drops a file stored under it, and storing one takes it off this list.
   */
  const skipped = new Map<string, SkipReason>();
  const skip = async (path: string, reason: SkipReason) => {
    listed(path);
    const held = stored.get(path);
    if (held) {
      await dropBlob(batch, blobKey(input, held), held.file.bytes);
      stored.delete(path);
      dropped.add(path);
      storedBytes -= held.file.bytes;
    }
    skipped.delete(path);
    skipped.set(path, reason);
  };

  const entries = readArchive(input.archive, {
    maxEntryBytes: limits.fileBytes,
    maxDecompressedBytes: limits.decompressedBytes,
  });
  const placed = input.stripSegments === "top"
    ? placeUnderTopFolder(entries)
    : placeAll(entries, input.stripSegments);
  for await (const { entry, checked } of placed) {
    input.signal.throwIfAborted();
    await pace();

    if (!checked.ok) {
      throw new PermanentJobError(
        "invalid_archive",
        `The archive has an unsafe path: it ${checked.reason}.`,
        400,
      );
    }
    const path = checked.path;
    if (!path || entry.kind === "directory") continue;
    if (input.filters.subpath && !isUnder(path, input.filters.subpath)) continue;
    if (entry.kind !== "file" && ++linkEntries > limits.files) {
      throw tooLarge(`${limits.files} links and special files`);
    }
    if (entry.kind === "symlink") {
      // (a zip names its symlinks at its end, after their entries went by as files: this undoes them)
      await skip(path, "symlink");
      continue;
    }
    if (entry.kind !== "file") continue;
    if (++fileEntries > limits.files) throw tooLarge(`${limits.files} files`);
    if (!fitsPathLimit(path)) {
      // listed shortened, marked so that it can never name (and drop) a stored file
      const shortened = `${path.slice(0, 200)}…`;
      listed(shortened);
      skipped.set(shortened, "limit");
      continue;
    }
    const byPath = skipFor(path);
    if (byPath) {
      await skip(path, byPath);
      continue;
    }
    if (entry.size > limits.fileBytes || !entry.content) {
      await skip(path, "too_large");
      continue;
    }
    const text = decodeText(entry.content);
    const byContent = text === null ? "binary" : contentFilter(entry.content, text);
    if (byContent || text === null) {
      await skip(path, byContent ?? "binary");
      continue;
    }
    listed(path);
    // a path given again replaces its earlier file, bytes and all
    const replaced = stored.get(path);
    if (replaced || dropped.has(path)) reindexNeeded = true;
    storedBytes += entry.content.byteLength - (replaced?.file.bytes ?? 0);
    if (storedBytes > limits.totalBytes) {
      throw tooLarge(`${formatBytes(limits.totalBytes)} of stored files`);
    }
    const file: TreeFile = {
      path,
      bytes: entry.content.byteLength,
      tokens: countTokensInUtf8(entry.content),
      language: detectLanguage(path),
      priority: filePriority(path),
    };
    if (replaced) await dropBlob(batch, blobKey(input, replaced), replaced.file.bytes);
    // (string order is KV's key order but for characters past U+FFFF: a file out of place is only slower)
    const held: StoredFile = { n: path > lastByPath ? null : nextNumber++, file };
    if (held.n === null) lastByPath = path;
    await writeBlob(batch, blobKey(input, held), entry.content);
    stored.set(path, held);
    skipped.delete(path);
    await index.add(path, text);
  }

  const files = [...stored.values()].sort((a, b) => a.file.path.localeCompare(b.file.path));
  tree.files = files.map((f) => f.file);
  tree.skipped = Array.from(skipped, ([path, reason]) => ({ path, reason }));
  for (const f of tree.files) {
    stats.bytes += f.bytes;
    stats.tokens += f.tokens;
    stats.languages[f.language] = (stats.languages[f.language] ?? 0) + f.bytes;
  }
  stats.files = tree.files.length;
  stats.skipped = tree.skipped.length;
  await input.onPhase?.("indexing", 0, 1);
  let indexShards = await index.finish();
  if (reindexNeeded) indexShards = await reindex(input, files, indexShards);
  const numbered = files.flatMap(({ n, file }): [string, number][] => n === null ? [] : [[file.path, n]]);
  await writeFileNumbers(batch, repoId, gen, numbered);
  await writeBlobFrom(batch, keys.repoTree(repoId, gen), treeJson(tree));
  await batch.flush();
  await input.onPhase?.("indexing", 1, 1);
  return { stats, indexShards };
}

/**
 * `JSON.stringify(tree)` in UTF-8, ~16 KB at a time: 50,000 files with long paths make ~50 MB
 * of it, which as one string and its bytes took ~120 MB at the end of an ingest.
 */
function* treeJson(tree: Tree): Generator<Uint8Array> {
  const utf8 = new TextEncoder();
  let text = "";
  function* add(piece: string) {
    text += piece;
    if (text.length < 16_384) return;
    yield utf8.encode(text);
    text = "";
  }
  yield* add('{"files":[');
  for (const [i, file] of tree.files.entries()) yield* add((i ? "," : "") + JSON.stringify(file));
  yield* add('],"skipped":[');
  for (const [i, skip] of tree.skipped.entries()) yield* add((i ? "," : "") + JSON.stringify(skip));
  yield utf8.encode(`${text}]}`);
}

/**
 * Builds the index again from the stored files, in place of the `written` shards: a path given
 * twice in a tar (appended with `tar -r`, say) left the earlier file's words in the index, and a
 * search would cite lines of the later file for them. Rare, so this reads the files back rather than keeping
 * track of chunks; a path dropped after it was stored (a zip's symlink) leaves hits that are
 * skipped when their passage is read (lib/llm/context.ts).
 */
async function reindex(input: IngestInput, files: StoredFile[], written: number): Promise<number> {
  const { kv, batch, repoId, gen } = input;
  await batch.flush();
  for (let shard = 0; shard < written; shard++) {
    const key = keys.repoIndexShard(repoId, gen, shard);
    const meta = await getBlobMeta(kv, key);
    if (meta) await dropBlob(batch, key, meta.size);
  }
  await batch.flush();
  const index = new IndexBuilder(repoId, gen, batch);
  for (const held of files) {
    input.signal.throwIfAborted();
    const bytes = await readBlob(kv, blobKey(input, held));
    if (bytes) await index.add(held.file.path, utf8.decode(bytes));
  }
  return await index.finish();
}
