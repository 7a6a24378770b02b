/**
 * The retrieval index for chat and concepts: files split into line-ranged chunks, indexed with
 * BM25 (MiniSearch). Built while ingesting, in shards of bounded size so memory stays bounded
 * whatever the repository's size; each shard is stored in KV as a blob.
 *
 * Ingest writes each shard straight in MiniSearch's own serialised form (what `toJSON()` returns,
 * serialisation version 2: per term, per field, per chunk, the term's count) by counting terms
 * with the same tokenizer and options; searching loads it with `MiniSearch.loadJSON` and MiniSearch
 * does all the scoring. MiniSearch's `add()` keeps a radix tree up to date for every term it sees,
 * which only searching needs, and that was over half of a large ingest's CPU time (figures in
 * docs/PERFORMANCE.md). A test checks the shards equal what `add()` + `toJSON()` produce.
 */
import MiniSearch from "minisearch";
import { getBlobMeta, readBlob, writeBlob } from "./blobs.ts";
import { keys } from "./keys.ts";
import type { KvBatch } from "./kv_util.ts";

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
const SHARD_TEXT_BYTES = 2 * 1024 * 1024;

/** Splits identifiers too: `parseGitHubUrl` is found by "parse", "github" and "url". */
function tokenize(text: string): string[] {
  const out: string[] = [];
  for (const word of text.split(/[^A-Za-z0-9_]+/)) {
    if (!word) continue;
    out.push(word);
    // the split below is the slow part; it only splits at a `_` or before a capital after the start
    if (!/_|.[A-Z]/.test(word)) continue;
    const parts = word.split(/_|(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])/);
    if (parts.length > 1) out.push(...parts);
  }
  return out;
}

function processTerm(term: string): string | null {
  const t = term.toLowerCase();
  return t.length < 2 || t.length > 40 ? null : t;
}

const FIELDS = ["path", "text"] as const;
/** The options every shard is built and loaded with (a shard can only be read with the same ones). */
export const INDEX_OPTIONS = {
  fields: [...FIELDS],
  storeFields: ["path", "startLine", "endLine"],
  tokenize,
  processTerm,
};

/** Per term: per field id, chunk id → how often the term occurs in that field of that chunk. */
type Postings = Record<number, Record<number, number>>;

/**
 * One shard being built, in the shape `MiniSearch.loadJS` reads: the same document ids, field
 * lengths (distinct raw tokens), running average field lengths and stored fields as `add()` makes.
 */
class Shard {
  readonly #index = new Map<string, Postings>();
  readonly #documentIds: Record<number, number> = {};
  readonly #fieldLength: Record<number, number[]> = {};
  readonly #storedFields: Record<number, Chunk> = {};
  readonly #averageFieldLength = FIELDS.map(() => 0);
  count = 0;
  textChars = 0;

  add(chunk: Chunk & { text: string }): void {
    const id = this.count++;
    this.#documentIds[id] = id;
    this.#storedFields[id] = { path: chunk.path, startLine: chunk.startLine, endLine: chunk.endLine };
    const lengths: number[] = [];
    FIELDS.forEach((field, fieldId) => {
      // each distinct raw token once: its count here, then one update of the shard's postings
      const tokens = new Map<string, number>();
      for (const token of tokenize(chunk[field])) tokens.set(token, (tokens.get(token) ?? 0) + 1);
      lengths.push(tokens.size);
      this.#averageFieldLength[fieldId] = (this.#averageFieldLength[fieldId] * id + tokens.size) / (id + 1);
      for (const [token, count] of tokens) {
        const term = processTerm(token);
        if (!term) continue;
        let postings = this.#index.get(term);
        if (!postings) this.#index.set(term, postings = {});
        const counts = postings[fieldId] ??= {};
        counts[id] = (counts[id] ?? 0) + count;
      }
    });
    this.#fieldLength[id] = lengths;
    this.textChars += chunk.text.length;
  }

  /** The shard as `MiniSearch#toJSON()` would have written it. */
  toJSON() {
    return {
      documentCount: this.count,
      nextId: this.count,
      documentIds: this.#documentIds,
      fieldIds: Object.fromEntries(FIELDS.map((f, i) => [f, i])),
      fieldLength: this.#fieldLength,
      averageFieldLength: this.#averageFieldLength,
      storedFields: this.#storedFields,
      dirtCount: 0,
      index: [...this.#index],
      serializationVersion: 2,
    };
  }
}

/** Splits a file into chunks of about 40 lines (fewer when lines are very long). */
export function chunkLines(text: string): { startLine: number; endLine: number; text: string }[] {
  const lines = text.split("\n");
  const chunks = [];
  let start = 0;
  while (start < lines.length) {
    let end = start;
    let chars = 0;
    while (
      end < lines.length && end - start < LINES_PER_CHUNK &&
      (chars === 0 || chars + lines[end].length < MAX_CHUNK_CHARS)
    ) {
      chars += lines[end].length + 1;
      end++;
    }
    const body = lines.slice(start, end).join("\n");
    if (body.trim()) chunks.push({ startLine: start + 1, endLine: end, text: body });
    start = end;
  }
  return chunks;
}

/** Accumulates chunks into shards and writes each full shard to KV through the ingest's batch. */
export class IndexBuilder {
  #shard = new Shard();
  shards = 0;
  chunks = 0;

  constructor(
    private readonly repoId: string,
    private readonly gen: string,
    private readonly batch: KvBatch,
  ) {}

  /** Indexes one file's chunks; writes a shard when the current one is full. */
  async add(path: string, text: string): Promise<void> {
    for (const chunk of chunkLines(text)) {
      this.#shard.add({ path, ...chunk });
      this.chunks++;
    }
    if (this.#shard.textChars >= SHARD_TEXT_BYTES) await this.#writeShard();
  }

  async #writeShard(): Promise<void> {
    if (this.#shard.count === 0) return;
    const bytes = new TextEncoder().encode(JSON.stringify(this.#shard));
    await writeBlob(this.batch, keys.repoIndexShard(this.repoId, this.gen, this.shards), bytes);
    this.shards++;
    this.#shard = new Shard();
  }

  /** Writes the last shard; returns the shard count. */
  async finish(): Promise<number> {
    await this.#writeShard();
    return this.shards;
  }
}

/** A small per-process cache of loaded shards (bounded; KV is the truth). */
const shardCache = new Map<string, MiniSearch>();
const SHARD_CACHE_SIZE = 8;

async function loadShard(
  kv: Deno.Kv,
  repoId: string,
  gen: string,
  shard: number,
): Promise<MiniSearch | null> {
  const cacheKey = `${repoId}:${gen}:${shard}`;
  const hit = shardCache.get(cacheKey);
  if (hit) {
    shardCache.delete(cacheKey);
    shardCache.set(cacheKey, hit);
    return hit;
  }
  const base = keys.repoIndexShard(repoId, gen, shard);
  const meta = await getBlobMeta(kv, base);
  if (!meta) return null;
  const bytes = await readBlob(kv, base, meta);
  let index: MiniSearch;
  try {
    index = MiniSearch.loadJSON(new TextDecoder().decode(bytes!), INDEX_OPTIONS);
  } catch {
    return null; // an index written in another format: no hits rather than a failed chat
  }
  shardCache.set(cacheKey, index);
  if (shardCache.size > SHARD_CACHE_SIZE) shardCache.delete(shardCache.keys().next().value!);
  return index;
}

/** The best `limit` chunks for `query` across every shard of a repo's index (BM25 scores). */
export async function searchRepo(
  kv: Deno.Kv,
  repo: { id: string; gen: string; indexShards: number },
  query: string,
  limit = 8,
): Promise<Hit[]> {
  const hits: Hit[] = [];
  for (let shard = 0; shard < repo.indexShards; shard++) {
    const index = await loadShard(kv, repo.id, repo.gen, shard);
    if (!index) continue;
    for (const r of index.search(query, { boost: { path: 2 }, prefix: (t) => t.length > 3 })) {
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
