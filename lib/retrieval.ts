/**
 * The retrieval index for chat and concepts: files split into line-ranged chunks, indexed with
 * BM25 (MiniSearch). Built while ingesting, in shards of bounded size so memory stays bounded
 * whatever the repository's size; each shard is stored in KV as a blob (lib/index_shard.ts).
 *
 * Ingest does not call MiniSearch's `add()`: that keeps a radix tree up to date for every term it
 * sees, which only searching needs, and MiniSearch's JSON is as large as the text it indexes —
 * together over half of a large ingest's CPU time and most of its memory (docs/PERFORMANCE.md).
 * Ingest counts terms with the same tokenizer and options and stores each shard compactly (per
 * term, per field: chunk ids and counts); a search loads into MiniSearch only the terms its query
 * can match, so MiniSearch does all the scoring. Tests check a stored shard holds what `add()` +
 * `toJSON()` produce, and that searches score as over whole shards.
 */
import { getBlobMeta, readBlob, writeBlob } from "./blobs.ts";
import {
  encodeShard,
  openShard,
  type QueryTerm,
  type SearchableShard,
  type ShardCounts,
} from "./index_shard.ts";
import { keys } from "./keys.ts";
import type { KvBatch } from "./kv_util.ts";
import { ShardCounter } from "./shard_counter.ts";

export interface Chunk {
  path: string;
  startLine: number;
  endLine: number;
}

export interface Hit extends Chunk {
  score: number;
}

const LINES_PER_CHUNK = 40;
const MAX_CHUNK_CHARS = 4000;
/**
 * A shard ends at the end of the file that takes it past 2 Mi characters of text and paths (its
 * header lists its paths: 50,000 tiny files with long paths made one of ~50 MB), or at the chunk
 * that takes it past 65,536 distinct words: its tables grow with those, and a shard of 2 MB of
 * distinct words (a crafted repository) took ~60 MB more. Source has 10–20 thousand in 2 MB.
 */
const SHARD_CHARS = 2 * 1024 * 1024;
const SHARD_TOKENS = 1 << 16;

/** Classes of word characters ([A-Za-z0-9_]), as bits; 0 for every other character. */
const UNDERSCORE = 1;
const UPPER = 2;
const LOWER = 4;
const DIGIT = 8;
const CHAR_CLASS = new Uint8Array(128).map((_, c) => {
  const ch = String.fromCharCode(c);
  if (/[A-Z]/.test(ch)) return UPPER;
  if (/[a-z]/.test(ch)) return LOWER;
  if (/[0-9]/.test(ch)) return DIGIT;
  return ch === "_" ? UNDERSCORE : 0;
});

const classAt = (text: string, i: number) => {
  const c = text.charCodeAt(i);
  return c < 128 ? CHAR_CLASS[c] : 0;
};

/**
 * Calls `visit` with the span of each token of `text`: every run of [A-Za-z0-9_], and when it has
 * a `_` or a capital after its start and so splits into more than one part, each part too — split
 * at each `_` (dropped: parts may be empty), between a lower-case letter or digit and a capital,
 * and between two capitals when a lower-case letter follows. So `parseGitHubUrl` is found by
 * "parse", "github" and "url", and `HTMLParser` by "html" and "parser".
 *
 * Queries are tokenized with it; ingest finds the same tokens in WebAssembly (lib/wasm/shard_counter.ts).
 */
export function forEachToken(text: string, visit: (start: number, end: number) => void): void {
  const n = text.length;
  for (let i = 0; i < n;) {
    while (i < n && !classAt(text, i)) i++;
    if (i === n) return;
    let j = i;
    let splits = false;
    for (let c; j < n && (c = classAt(text, j)); j++) {
      if (c === UNDERSCORE || (c === UPPER && j > i)) splits = true;
    }
    visit(i, j);
    if (splits) visitParts(text, i, j, visit);
    i = j;
  }
}

/** The parts of the word `text[start, end)`, when there are more than one. */
function visitParts(text: string, start: number, end: number, visit: (start: number, end: number) => void) {
  const bounds: number[] = [];
  let partStart = start;
  for (let k = start; k < end; k++) {
    const here = classAt(text, k);
    if (here === UNDERSCORE) {
      bounds.push(partStart, k);
      partStart = k + 1;
    } else if (here === UPPER && k > partStart) {
      const before = classAt(text, k - 1);
      if (before & (LOWER | DIGIT) || (before === UPPER && k + 1 < end && classAt(text, k + 1) === LOWER)) {
        bounds.push(partStart, k);
        partStart = k;
      }
    }
  }
  if (bounds.length === 0) return;
  bounds.push(partStart, end);
  for (let p = 0; p < bounds.length; p += 2) visit(bounds[p], bounds[p + 1]);
}

/** The tokens of `text` (see {@link forEachToken}); MiniSearch tokenizes queries with it. */
function tokenize(text: string): string[] {
  const out: string[] = [];
  forEachToken(text, (start, end) => out.push(text.slice(start, end)));
  return out;
}

function processTerm(term: string): string | null {
  const t = term.toLowerCase();
  return t.length < 2 || t.length > 40 ? null : t;
}

const FIELDS = ["path", "text"] as const;
const PATH_FIELD = 0;
const TEXT_FIELD = 1;
/** The options every shard is built and loaded with (a shard can only be read with the same ones). */
export const INDEX_OPTIONS = {
  fields: [...FIELDS],
  storeFields: ["path", "startLine", "endLine"],
  tokenize,
  processTerm,
};

/** A chunk of a file: its lines, and its span of the file's text. */
interface ChunkSpan {
  startLine: number;
  endLine: number;
  start: number;
  end: number;
}

/** Mark 0 is "never"; a chunk field's mark is 1 + chunk id × fields + field id. */
const markOf = (chunk: number, field: number) => chunk * FIELDS.length + field + 1;

/**
 * One shard being built: the same document ids, field lengths (distinct raw tokens), running
 * average field lengths, stored fields and term counts as MiniSearch's `add()` makes. The words
 * are counted by WebAssembly (lib/shard_counter.ts), which finds them as {@link forEachToken} does.
 */
class Shard {
  readonly #counter = new ShardCounter();
  #paths!: Map<string, number>;
  #chunks!: number[];
  #fieldLength!: number[];
  #averageFieldLength!: number[];
  count = 0;
  /** Characters of the chunks' text and of the paths, so far. */
  chars = 0;

  constructor() {
    this.#reset();
  }

  /** Distinct raw tokens in the shard so far. */
  get tokens(): number {
    return this.#counter.tokens;
  }

  /** Adds a chunk of the file at `path`: its text is `text.slice(chunk.start, chunk.end)`. */
  addChunk(path: string, text: string, chunk: ChunkSpan): void {
    let pathIndex = this.#paths.get(path);
    if (pathIndex === undefined) {
      this.#paths.set(path, pathIndex = this.#paths.size);
      this.chars += path.length;
    }
    const id = this.count++;
    this.#chunks.push(pathIndex, chunk.startLine, chunk.endLine);
    this.#addField(id, PATH_FIELD, path, 0, path.length);
    this.#addField(id, TEXT_FIELD, text, chunk.start, chunk.end);
    this.chars += chunk.end - chunk.start;
  }

  #addField(id: number, fieldId: number, text: string, from: number, to: number): void {
    const distinct = this.#counter.addField(markOf(id, fieldId), text, from, to);
    this.#fieldLength.push(distinct);
    this.#averageFieldLength[fieldId] = (this.#averageFieldLength[fieldId] * id + distinct) / (id + 1);
  }

  /**
   * What the shard counted; then the shard is empty again, ready for the next one. The counts hold
   * until the next `addChunk`: their postings are the counter's own memory.
   */
  take(): ShardCounts {
    const counts: ShardCounts = {
      paths: [...this.#paths.keys()],
      chunks: this.#chunks,
      fieldLength: this.#fieldLength,
      averageFieldLength: this.#averageFieldLength,
      ...this.#counter.take(FIELDS.length),
    };
    this.#reset();
    return counts;
  }

  #reset(): void {
    this.#paths = new Map();
    this.#chunks = [];
    this.#fieldLength = [];
    this.#averageFieldLength = FIELDS.map(() => 0);
    this.count = 0;
    this.chars = 0;
  }
}

const BLANK = /\s/;

/**
 * Splits a file into chunks of about 40 lines (fewer when lines are very long), skipping blank
 * ones. Each chunk is its lines and its span of the text, without its last newline.
 */
export function chunkLines(text: string): ChunkSpan[] {
  const chunks = [];
  let line = 0;
  for (let at = 0; at <= text.length;) {
    const first = line;
    let end = at;
    let chars = 0;
    while (end <= text.length && line - first < LINES_PER_CHUNK) {
      const newline = text.indexOf("\n", end);
      const lineEnd = newline < 0 ? text.length : newline;
      if (chars > 0 && chars + lineEnd - end >= MAX_CHUNK_CHARS) break;
      chars += lineEnd - end + 1;
      end = lineEnd + 1;
      line++;
    }
    if (hasNonBlank(text, at, end - 1)) {
      chunks.push({ startLine: first + 1, endLine: line, start: at, end: end - 1 });
    }
    at = end;
  }
  return chunks;
}

/** True when `text[from, to)` has a character other than whitespace (`\s`). */
function hasNonBlank(text: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c === 32 || (c >= 9 && c <= 13)) continue;
    if (c < 128 || !BLANK.test(text[i])) return true;
  }
  return false;
}

/** Accumulates chunks into shards and writes each full shard to KV through the ingest's batch. */
export class IndexBuilder {
  readonly #shard = new Shard();
  shards = 0;
  chunks = 0;

  constructor(
    private readonly repoId: string,
    private readonly gen: string,
    private readonly batch: Pick<KvBatch, "set">,
  ) {}

  /** Indexes one file's chunks; writes a shard when the current one is full. */
  async add(path: string, text: string): Promise<void> {
    const chunks = chunkLines(text);
    this.chunks += chunks.length;
    for (const chunk of chunks) {
      this.#shard.addChunk(path, text, chunk);
      if (this.#shard.tokens >= SHARD_TOKENS) await this.#writeShard();
    }
    if (this.#shard.chars >= SHARD_CHARS) await this.#writeShard();
  }

  async #writeShard(): Promise<void> {
    if (this.#shard.count === 0) return;
    const bytes = encodeShard(this.#shard.take());
    await writeBlob(this.batch, keys.repoIndexShard(this.repoId, this.gen, this.shards), bytes);
    this.shards++;
  }

  /** Writes the last shard; returns the shard count. */
  async finish(): Promise<number> {
    await this.#writeShard();
    return this.shards;
  }
}

/**
 * Shards read lately, most recent last, up to a budget of memory: a repository's questions come
 * in runs, and a 100 MB repository's 48 shards take ~50 MB (KV is the truth).
 */
const shardCache = new Map<string, SearchableShard>();
const SHARD_CACHE_BYTES = 64 * 1024 * 1024;
let shardCacheBytes = 0;
/** Shards being read now: questions that arrive together read each shard once. */
const shardReads = new Map<string, Promise<SearchableShard | null>>();

function loadShard(kv: Deno.Kv, repoId: string, gen: string, shard: number): Promise<SearchableShard | null> {
  const cacheKey = `${repoId}:${gen}:${shard}`;
  const hit = shardCache.get(cacheKey);
  if (hit) {
    shardCache.delete(cacheKey);
    shardCache.set(cacheKey, hit);
    return Promise.resolve(hit);
  }
  let read = shardReads.get(cacheKey);
  if (!read) {
    read = readShard(kv, keys.repoIndexShard(repoId, gen, shard)).then((loaded) => {
      if (loaded) cacheShard(cacheKey, loaded);
      return loaded;
    }).finally(() => shardReads.delete(cacheKey));
    shardReads.set(cacheKey, read);
  }
  return read;
}

async function readShard(kv: Deno.Kv, base: Deno.KvKey): Promise<SearchableShard | null> {
  const meta = await getBlobMeta(kv, base);
  return meta ? openShard((await readBlob(kv, base, meta))!, INDEX_OPTIONS) : null;
}

function cacheShard(cacheKey: string, loaded: SearchableShard): void {
  shardCacheBytes += loaded.cost - (shardCache.get(cacheKey)?.cost ?? 0);
  shardCache.set(cacheKey, loaded);
  for (const [key, old] of shardCache) {
    if (shardCacheBytes <= SHARD_CACHE_BYTES || old === loaded) break;
    shardCache.delete(key);
    shardCacheBytes -= old.cost;
  }
}

/** Prefix search for query terms longer than 3 characters. */
const searchAsPrefix = (term: string) => term.length > 3;
const SEARCH_OPTIONS = { boost: { path: 2 }, prefix: searchAsPrefix };

/** The query's terms as MiniSearch searches them (its `executeQuery`, with the index's options). */
function queryTerms(query: string): QueryTerm[] {
  return tokenize(query).map(processTerm).filter((term) => term !== null).map((term) => ({
    term,
    prefix: searchAsPrefix(term),
  }));
}

/** The best `limit` chunks for `query` across every shard of a repo's index (BM25 scores). */
export async function searchRepo(
  kv: Deno.Kv,
  repo: { id: string; gen: string; indexShards: number },
  query: string,
  limit = 8,
): Promise<Hit[]> {
  const terms = queryTerms(query);
  if (!terms.length) return [];
  const hits: Hit[] = [];
  for (let shard = 0; shard < repo.indexShards; shard++) {
    const index = (await loadShard(kv, repo.id, repo.gen, shard))?.indexFor(terms);
    if (!index) continue;
    for (const r of index.search(query, SEARCH_OPTIONS)) {
      hits.push({
        path: r.path,
        startLine: r.startLine,
        endLine: r.endLine,
        score: Math.round(r.score * 1000) / 1000,
      });
    }
  }
  return hits.sort((a, b) => b.score - a.score).slice(0, limit);
}
