/**
 * The retrieval index for chat and concepts: files split into line-ranged chunks, scored with
 * BM25 over the chunk text plus the file path (boosted). Built while ingesting, in shards of
 * bounded size so memory stays bounded whatever the repository's size; each shard is stored in KV
 * as a blob: a JSON header (paths, chunks, sorted terms) and varint-encoded posting lists
 * (term → doc, tf pairs with doc ids delta-encoded), about a third of the text's size.
 *
 * A purpose-built index rather than a general search library: ingest builds one posting list per
 * term with plain arrays, which is ~5× faster and ~10× smaller in memory than MiniSearch's radix
 * tree on a 100 MB repository (see docs/PERFORMANCE.md), and search needs only exact and prefix
 * lookups on a sorted term list.
 */
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
const SHARD_TEXT_BYTES = 4 * 1024 * 1024;
/** BM25+ parameters (the usual k1 and b, and BM25+'s lower bound d). */
const K1 = 1.2;
const B = 0.7;
const D = 0.5;
const PATH_BOOST = 2;
/** Weight of a prefix match (`pars` → `parser`) relative to an exact one. */
const PREFIX_WEIGHT = 0.375;
const FORMAT = 3;

/** Character classes of ASCII codes: 1 lower-case letter, 2 upper-case letter, 3 digit, 4 underscore. */
const CLASS = new Uint8Array(128);
for (let c = 97; c <= 122; c++) CLASS[c] = 1;
for (let c = 65; c <= 90; c++) CLASS[c] = 2;
for (let c = 48; c <= 57; c++) CLASS[c] = 3;
CLASS[95] = 4;
const MIN_TERM = 2;
const MAX_TERM = 40;

/**
 * Calls `emit` with each index term of `text`, lowercased, 2–40 characters: the words made of
 * `[A-Za-z0-9_]`, and their parts when a word is an identifier (`parseGitHubUrl` is found by
 * "parse", "github" and "url" as well as by itself; `HTMLParser` by "html" and "parser";
 * `snake_case` by "snake" and "case"). A hand-written scanner: this runs over every stored byte.
 */
function eachTerm(text: string, emit: (term: string) => void): void {
  const n = text.length;
  const cut: number[] = [];
  let i = 0;
  while (i < n) {
    let c = text.charCodeAt(i);
    if (c >= 128 || CLASS[c] === 0) {
      i++;
      continue;
    }
    const start = i;
    cut.length = 0;
    let prev = 0;
    for (; i < n; i++) {
      c = text.charCodeAt(i);
      const k = c < 128 ? CLASS[c] : 0;
      if (k === 0) break;
      // Part boundaries: around "_", lower/digit→Upper, and Upper→Upper+lower ("HTMLParser").
      if (k === 4 || prev === 4) cut.push(i);
      else if (k === 2 && (prev === 1 || prev === 3)) cut.push(i);
      else if (
        k === 2 && prev === 2 && i + 1 < n && CLASS[text.charCodeAt(i + 1) & 127] === 1 &&
        text.charCodeAt(i + 1) < 128
      ) {
        cut.push(i);
      }
      prev = k;
    }
    const length = i - start;
    if (length >= MIN_TERM && length <= MAX_TERM) emit(text.slice(start, i).toLowerCase());
    if (cut.length === 0) continue;
    cut.push(i);
    let from = start;
    for (const to of cut) {
      // Underscores are separators, never part of a part.
      let a = from;
      let b = to;
      while (a < b && text.charCodeAt(a) === 95) a++;
      while (b > a && text.charCodeAt(b - 1) === 95) b--;
      if (b - a >= MIN_TERM && b - a <= MAX_TERM && b - a < length) emit(text.slice(a, b).toLowerCase());
      from = to;
    }
  }
}

/** Term frequencies of `text` and its length in terms. */
function termCounts(text: string): { counts: Map<string, number>; length: number } {
  const counts = new Map<string, number>();
  let length = 0;
  eachTerm(text, (t) => {
    counts.set(t, (counts.get(t) ?? 0) + 1);
    length++;
  });
  return { counts, length };
}

/** A shard's JSON header; the posting lists follow it in binary. */
interface ShardHeader {
  v: typeof FORMAT;
  paths: string[];
  pathLengths: number[];
  /** Per chunk: path index, start line, end line, length in terms. */
  docs: number[];
  /** Sorted; the i-th posting list in the body belongs to terms[i]. */
  terms: string[];
  /** Sorted; their posting lists (path index, tf) follow the terms' lists. */
  pathTerms: string[];
}

function appendPosting(map: Map<string, number[]>, term: string, id: number, tf: number): void {
  const list = map.get(term);
  if (list) list.push(id, tf);
  else map.set(term, [id, tf]);
}

/** A growable byte buffer of unsigned LEB128 varints. */
class VarintWriter {
  #buf = new Uint8Array(1 << 16);
  length = 0;

  write(n: number): void {
    if (this.length + 5 > this.#buf.length) {
      const bigger = new Uint8Array(this.#buf.length * 2);
      bigger.set(this.#buf.subarray(0, this.length));
      this.#buf = bigger;
    }
    while (n >= 0x80) {
      this.#buf[this.length++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    this.#buf[this.length++] = n;
  }

  bytes(): Uint8Array {
    return this.#buf.subarray(0, this.length);
  }
}

/** Writes each term's list as: count, then (id delta, tf) pairs. Returns the sorted terms. */
function writePostings(out: VarintWriter, map: Map<string, number[]>): string[] {
  const terms = [...map.keys()].sort();
  for (const term of terms) {
    const list = map.get(term)!;
    out.write(list.length / 2);
    for (let i = 0, prev = 0; i < list.length; i += 2) {
      out.write(list[i] - prev);
      out.write(list[i + 1]);
      prev = list[i];
    }
  }
  return terms;
}

/** Offsets of `count` consecutive posting lists starting at `at`; returns the offsets and the end. */
function scanPostings(body: Uint8Array, at: number, count: number): { offsets: Int32Array; end: number } {
  const offsets = new Int32Array(count);
  for (let t = 0; t < count; t++) {
    offsets[t] = at;
    let n = 0;
    for (let shift = 0;; shift += 7) {
      const b = body[at++];
      n |= (b & 0x7f) << shift;
      if (b < 0x80) break;
    }
    for (let left = n * 2; left > 0; at++) if (body[at] < 0x80) left--;
  }
  return { offsets, end: at };
}

/** Calls `each(id, tf)` for the posting list at `at`. */
function readPostings(body: Uint8Array, at: number, each: (id: number, tf: number, n: number) => void): void {
  const next = () => {
    let n = 0;
    for (let shift = 0;; shift += 7) {
      const b = body[at++];
      n |= (b & 0x7f) << shift;
      if (b < 0x80) return n;
    }
  };
  const count = next();
  for (let i = 0, id = 0; i < count; i++) {
    id += next();
    each(id, next(), count);
  }
}

const NOT_BLANK = /\S/;

/** Splits a file into chunks of about 40 lines (fewer when lines are very long). */
export function chunkLines(text: string): { startLine: number; endLine: number; text: string }[] {
  const chunks = [];
  let lineStart = 0;
  let line = 0;
  let last = false;
  while (!last) {
    const firstLine = line;
    const from = lineStart;
    let to = from;
    let chars = 0;
    for (let count = 0; count < LINES_PER_CHUNK; count++) {
      const newline = text.indexOf("\n", lineStart);
      const lineEnd = newline === -1 ? text.length : newline;
      if (chars !== 0 && chars + (lineEnd - lineStart) >= MAX_CHUNK_CHARS) break;
      chars += lineEnd - lineStart + 1;
      line++;
      to = lineEnd;
      if (newline === -1) {
        last = true;
        break;
      }
      lineStart = newline + 1;
    }
    const body = text.slice(from, to);
    if (NOT_BLANK.test(body)) chunks.push({ startLine: firstLine + 1, endLine: line, text: body });
  }
  return chunks;
}

/** Accumulates chunks into shards and writes each full shard to KV through the ingest's batch. */
export class IndexBuilder {
  #paths: string[] = [];
  #pathLengths: number[] = [];
  #docs: number[] = [];
  #postings = new Map<string, number[]>();
  #pathPostings = new Map<string, number[]>();
  #shardText = 0;
  shards = 0;
  chunks = 0;

  constructor(
    private readonly repoId: string,
    private readonly gen: string,
    private readonly batch: KvBatch,
  ) {}

  /** Indexes one file's chunks; writes a shard when the current one is full. */
  async add(path: string, text: string): Promise<void> {
    const chunks = chunkLines(text);
    if (chunks.length === 0) return;
    const pathIndex = this.#paths.length;
    const pathTerms = termCounts(path);
    this.#paths.push(path);
    this.#pathLengths.push(pathTerms.length);
    for (const [term, tf] of pathTerms.counts) appendPosting(this.#pathPostings, term, pathIndex, tf);
    for (const chunk of chunks) {
      const doc = this.#docs.length / 4;
      const { counts, length } = termCounts(chunk.text);
      this.#docs.push(pathIndex, chunk.startLine, chunk.endLine, length);
      for (const [term, tf] of counts) appendPosting(this.#postings, term, doc, tf);
      this.#shardText += chunk.text.length;
      this.chunks++;
    }
    if (this.#shardText >= SHARD_TEXT_BYTES) await this.#writeShard();
  }

  async #writeShard(): Promise<void> {
    if (this.#docs.length === 0) return;
    const body = new VarintWriter();
    const header: ShardHeader = {
      v: FORMAT,
      paths: this.#paths,
      pathLengths: this.#pathLengths,
      docs: this.#docs,
      terms: writePostings(body, this.#postings),
      pathTerms: writePostings(body, this.#pathPostings),
    };
    const head = new TextEncoder().encode(JSON.stringify(header));
    const bytes = new Uint8Array(4 + head.length + body.length);
    new DataView(bytes.buffer).setUint32(0, head.length);
    bytes.set(head, 4);
    bytes.set(body.bytes(), 4 + head.length);
    this.#paths = [];
    this.#pathLengths = [];
    this.#docs = [];
    this.#postings = new Map();
    this.#pathPostings = new Map();
    this.#shardText = 0;
    await writeBlob(this.batch, keys.repoIndexShard(this.repoId, this.gen, this.shards), bytes);
    this.shards++;
  }

  /** Writes the last shard; returns the shard count. */
  async finish(): Promise<number> {
    await this.#writeShard();
    return this.shards;
  }
}

/** A loaded shard, ready to search. */
class Shard {
  readonly docCount: number;
  readonly avgDocLength: number;
  readonly avgPathLength: number;
  /** First chunk of each path (chunks of one file are consecutive). */
  readonly pathFirstDoc: Int32Array;
  readonly termOffsets: Int32Array;
  readonly pathTermOffsets: Int32Array;

  constructor(readonly header: ShardHeader, readonly body: Uint8Array) {
    const { docs, paths, pathLengths } = header;
    this.docCount = docs.length / 4;
    let total = 0;
    this.pathFirstDoc = new Int32Array(paths.length).fill(this.docCount);
    for (let doc = this.docCount - 1; doc >= 0; doc--) {
      total += docs[doc * 4 + 3];
      this.pathFirstDoc[docs[doc * 4]] = doc;
    }
    this.avgDocLength = total / Math.max(1, this.docCount) || 1;
    this.avgPathLength = pathLengths.reduce((a, b) => a + b, 0) / Math.max(1, paths.length) || 1;
    const text = scanPostings(body, 0, header.terms.length);
    this.termOffsets = text.offsets;
    this.pathTermOffsets = scanPostings(body, text.end, header.pathTerms.length).offsets;
  }

  /** BM25+ scores of the chunks matching any query term, exact or (for terms over 3 letters) by prefix. */
  score(queryTerms: string[]): Map<number, number> {
    const scores = new Map<number, number>();
    const add = (doc: number, s: number) => scores.set(doc, (scores.get(doc) ?? 0) + s);
    const { docs, paths, pathLengths } = this.header;
    for (const q of queryTerms) {
      for (const [index, weight] of matches(this.header.terms, q)) {
        readPostings(this.body, this.termOffsets[index], (doc, tf, n) => {
          const idf = inverseFrequency(this.docCount, n);
          add(doc, weight * bm25(idf, tf, docs[doc * 4 + 3], this.avgDocLength));
        });
      }
      for (const [index, weight] of matches(this.header.pathTerms, q)) {
        readPostings(this.body, this.pathTermOffsets[index], (p, tf, n) => {
          const idf = inverseFrequency(paths.length, n);
          const s = PATH_BOOST * weight * bm25(idf, tf, pathLengths[p], this.avgPathLength);
          for (let doc = this.pathFirstDoc[p]; doc < this.docCount && docs[doc * 4] === p; doc++) add(doc, s);
        });
      }
    }
    return scores;
  }
}

function inverseFrequency(n: number, containing: number): number {
  return Math.log(1 + (n - containing + 0.5) / (containing + 0.5));
}

function bm25(idf: number, tf: number, length: number, avgLength: number): number {
  return idf * (D + (tf * (K1 + 1)) / (tf + K1 * (1 - B + (B * length) / avgLength)));
}

/** First index in sorted `terms` that is ≥ `term`. */
function lowerBound(terms: string[], term: string): number {
  let lo = 0;
  let hi = terms.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (terms[mid] < term) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** [term index, weight] for the exact match and, for terms over 3 letters, every prefix match. */
function* matches(terms: string[], q: string): Generator<[number, number]> {
  let i = lowerBound(terms, q);
  if (terms[i] === q) yield [i++, 1];
  if (q.length <= 3) return;
  for (; i < terms.length && terms[i].startsWith(q); i++) {
    yield [i, (PREFIX_WEIGHT * q.length) / terms[i].length];
  }
}

/** A small per-process cache of loaded shards (bounded; KV is the truth). */
const shardCache = new Map<string, Shard>();
const SHARD_CACHE_SIZE = 8;

async function loadShard(kv: Deno.Kv, repoId: string, gen: string, shard: number): Promise<Shard | null> {
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
  const bytes = (await readBlob(kv, base, meta))!;
  const headLength = new DataView(bytes.buffer, bytes.byteOffset).getUint32(0);
  let header: ShardHeader;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(4, 4 + headLength)));
  } catch {
    return null;
  }
  // An index written in another format (an older release) is not searchable; the repo expires.
  if (header.v !== FORMAT) return null;
  const loaded = new Shard(header, bytes.subarray(4 + headLength));
  shardCache.set(cacheKey, loaded);
  if (shardCache.size > SHARD_CACHE_SIZE) shardCache.delete(shardCache.keys().next().value!);
  return loaded;
}

/** The best `limit` chunks for `query` across every shard of a repo's index (BM25+ scores). */
export async function searchRepo(
  kv: Deno.Kv,
  repo: { id: string; gen: string; indexShards: number },
  query: string,
  limit = 8,
): Promise<Hit[]> {
  const terms = new Set<string>();
  eachTerm(query, (t) => terms.add(t));
  if (terms.size === 0) return [];
  const hits: Hit[] = [];
  for (let n = 0; n < repo.indexShards; n++) {
    const shard = await loadShard(kv, repo.id, repo.gen, n);
    if (!shard) continue;
    const { docs, paths } = shard.header;
    for (const [doc, score] of shard.score([...terms])) {
      hits.push({
        path: paths[docs[doc * 4]],
        startLine: docs[doc * 4 + 1],
        endLine: docs[doc * 4 + 2],
        score: Math.round(score * 1000) / 1000,
      });
    }
    // Keep only what can still make the cut, so memory stays bounded over many shards.
    if (hits.length > limit * 8) hits.sort((a, b) => b.score - a.score).splice(limit);
  }
  return hits.sort((a, b) => b.score - a.score).slice(0, limit);
}
