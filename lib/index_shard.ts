/**
 * How a shard of the retrieval index is stored in KV, and how a search reads it.
 *
 * Layout (`repolm-bm25-2`): the bytes `RLM2`, the header's length (uint32, little-endian), the
 * header as JSON (paths, chunks, field lengths, average field lengths, and the terms, sorted),
 * then for each term and field the byte length of its postings, then the postings themselves: for
 * each chunk holding the term in that field, the chunk id's step from the previous one and the
 * term's count there. Lengths, steps and counts are unsigned LEB128 varints. The WebAssembly that
 * counts a shard's words sorts its terms and writes the postings (lib/wasm/shard_counter.ts).
 *
 * A search does not turn a whole shard into a MiniSearch index: for a repository of 100 MB that
 * took 12–14 s and ~600 MB per question. It builds MiniSearch's serialised form (`toJSON()`,
 * version 2) of only the terms the query can match — each query term, and the terms it is a
 * prefix of when it is searched as a prefix — and the chunks those terms occur in, with the
 * shard's chunk count and average field lengths. BM25 scores a chunk from exactly those, so
 * MiniSearch scores and ranks as it would over the whole shard (a test compares the two).
 *
 * Shards written by earlier versions (`repolm-bm25-1`, and MiniSearch's own JSON before that) are
 * still read, by loading them whole.
 */
import MiniSearch, { type Options } from "minisearch";

const FORMAT = "repolm-bm25-2";
const MAGIC = [0x52, 0x4c, 0x4d, 0x32]; // "RLM2"
const LEGACY_FORMAT = "repolm-bm25-1";

/** What an index shard holds, as a shard being built counted it. */
export interface ShardCounts {
  paths: string[];
  /** Per chunk: its path's index in `paths`, first line, last line. */
  chunks: number[];
  /** Per chunk, per field: distinct raw tokens (MiniSearch's field length). */
  fieldLength: number[];
  averageFieldLength: number[];
  /** Sorted (by UTF-16 code units). */
  terms: string[];
  /** Per term and field, the byte length of its postings; then the postings (see the layout above). */
  postings: Uint8Array;
}

interface Header {
  format: typeof FORMAT;
  paths: string[];
  chunks: number[];
  fieldLength: number[];
  averageFieldLength: number[];
  /** Sorted (by UTF-16 code units), so the terms a prefix starts are one run. */
  terms: string[];
}

/** A query term as MiniSearch will search it: the processed term, and whether as a prefix too. */
export interface QueryTerm {
  term: string;
  prefix: boolean;
}

/** A stored shard, ready to give the MiniSearch index a query needs. */
export interface SearchableShard {
  /** An index holding every term the query terms can match; null when none occurs here. */
  indexFor(query: QueryTerm[]): MiniSearch | null;
  /** About how many bytes of memory it holds. */
  readonly cost: number;
}

/** The shard's bytes as stored. */
export function encodeShard(shard: ShardCounts): Uint8Array {
  const header = new TextEncoder().encode(JSON.stringify(
    {
      format: FORMAT,
      paths: shard.paths,
      chunks: shard.chunks,
      fieldLength: shard.fieldLength,
      averageFieldLength: shard.averageFieldLength,
      terms: shard.terms,
    } satisfies Header,
  ));
  const out = new Uint8Array(8 + header.byteLength + shard.postings.byteLength);
  out.set(MAGIC);
  new DataView(out.buffer).setUint32(4, header.byteLength, true);
  out.set(header, 8);
  out.set(shard.postings, 8 + header.byteLength);
  return out;
}

/** A shard in the current layout: its header parsed, its postings read only for the terms asked. */
class ShardReader implements SearchableShard {
  readonly cost: number;
  readonly #bytes: Uint8Array;
  readonly #header: Header;
  readonly #fields: number;
  /** Per term and field, where its postings start in #bytes; one more entry for the end. */
  readonly #starts: Int32Array;

  constructor(bytes: Uint8Array, header: Header, lengthsAt: number, private readonly options: Options) {
    this.#bytes = bytes;
    this.#header = header;
    this.#fields = header.averageFieldLength.length;
    const slots = header.terms.length * this.#fields;
    const lengths = new Int32Array(slots);
    let at = lengthsAt;
    for (let slot = 0; slot < slots; slot++) [lengths[slot], at] = readVarint(bytes, at);
    this.#starts = new Int32Array(slots + 1);
    this.#starts[0] = at;
    for (let slot = 0; slot < slots; slot++) this.#starts[slot + 1] = this.#starts[slot] + lengths[slot];
    if (this.#starts[slots] !== bytes.byteLength) throw new Error("index shard: postings do not fit");
    this.cost = bytes.byteLength + header.terms.length * 48 + header.chunks.length * 12;
  }

  indexFor(query: QueryTerm[]): MiniSearch | null {
    const selected = new Set<number>();
    for (const { term, prefix } of query) {
      for (let t = this.#lowerBound(term); t < this.#header.terms.length; t++) {
        const candidate = this.#header.terms[t];
        if (candidate === term || (prefix && candidate.startsWith(term))) selected.add(t);
        else break;
      }
    }
    return selected.size ? this.#miniSearch(selected) : null;
  }

  /** MiniSearch's index of the terms `termIds` and of the chunks they occur in. */
  #miniSearch(termIds: Iterable<number>): MiniSearch {
    const fields = this.#fields;
    const docs = new Set<number>();
    const index: SerialisedTerm[] = [];
    for (const t of termIds) {
      const byField: Record<number, Record<number, number>> = {};
      for (let field = 0; field < fields; field++) {
        const slot = t * fields + field;
        if (this.#starts[slot] === this.#starts[slot + 1]) continue;
        const counts: Record<number, number> = {};
        for (let at = this.#starts[slot], id = 0; at < this.#starts[slot + 1];) {
          let step, count;
          [step, at] = readVarint(this.#bytes, at);
          [count, at] = readVarint(this.#bytes, at);
          counts[id += step] = count;
          docs.add(id);
        }
        byField[field] = counts;
      }
      index.push([this.#header.terms[t], byField]);
    }
    return MiniSearch.loadJS(serialisedForm(this.#header, docs, index, this.options), this.options);
  }

  /** The first term not before `term`. */
  #lowerBound(term: string): number {
    const { terms } = this.#header;
    let lo = 0;
    for (let hi = terms.length; lo < hi;) {
      const mid = (lo + hi) >>> 1;
      if (terms[mid] < term) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

function readVarint(bytes: Uint8Array, at: number): [number, number] {
  let n = 0;
  for (let shift = 0; shift < 35; shift += 7) {
    if (at >= bytes.byteLength) break;
    const b = bytes[at++];
    n += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) return [n, at];
  }
  throw new Error("index shard: a varint is cut off");
}

/** A shard of an earlier layout, loaded whole: every query gets the same index. */
class WholeShard implements SearchableShard {
  constructor(private readonly index: MiniSearch, readonly cost: number) {}

  indexFor(): MiniSearch {
    return this.index;
  }
}

/** A shard as stored by `repolm-bm25-1`: per term, per field, `[chunk id step, count, …]`. */
interface LegacyShard {
  format: typeof LEGACY_FORMAT;
  paths: string[];
  chunks: number[];
  fieldLength: number[];
  averageFieldLength: number[];
  terms: string[];
  postings: number[][][];
}

/** A `repolm-bm25-1` shard as MiniSearch's serialised form. */
function legacyForm(shard: LegacyShard, options: Options) {
  const index = shard.terms.map((term, t): SerialisedTerm => {
    const byField: Record<number, Record<number, number>> = {};
    shard.postings[t].forEach((flat, fieldId) => {
      if (!flat.length) return;
      const counts: Record<number, number> = {};
      for (let i = 0, id = 0; i < flat.length; i += 2) counts[id += flat[i]] = flat[i + 1];
      byField[fieldId] = counts;
    });
    return [term, byField];
  });
  return serialisedForm(
    shard,
    Array.from({ length: shard.chunks.length / 3 }, (_, id) => id),
    index,
    options,
  );
}

/** A term and its counts by field id, then by chunk id, as MiniSearch serialises them. */
type SerialisedTerm = [string, Record<number, Record<number, number>>];

/** MiniSearch's serialised form (`toJSON()`, version 2) of a shard's chunks `docs` and terms `index`. */
function serialisedForm(
  shard: Pick<Header, "paths" | "chunks" | "fieldLength" | "averageFieldLength">,
  docs: Iterable<number>,
  index: SerialisedTerm[],
  options: Options,
) {
  const count = shard.chunks.length / 3;
  const fields = shard.averageFieldLength.length;
  const documentIds: Record<number, number> = {};
  const fieldLength: Record<number, number[]> = {};
  const storedFields: Record<number, { path: string; startLine: number; endLine: number }> = {};
  for (const id of docs) {
    documentIds[id] = id;
    fieldLength[id] = shard.fieldLength.slice(id * fields, (id + 1) * fields);
    const [pathIndex, startLine, endLine] = shard.chunks.slice(id * 3, id * 3 + 3);
    storedFields[id] = { path: shard.paths[pathIndex], startLine, endLine };
  }
  return {
    documentCount: count,
    nextId: count,
    documentIds,
    fieldIds: Object.fromEntries((options.fields as string[]).map((f, i) => [f, i])),
    fieldLength,
    averageFieldLength: shard.averageFieldLength,
    storedFields,
    dirtCount: 0,
    index,
    serializationVersion: 2,
  };
}

const hasMagic = (bytes: Uint8Array) => bytes.byteLength >= 8 && MAGIC.every((b, i) => bytes[i] === b);

/** A stored shard, ready to search with `options` (those it was built with); null when unreadable. */
export function openShard(bytes: Uint8Array, options: Options): SearchableShard | null {
  try {
    if (hasMagic(bytes)) {
      const length = new DataView(bytes.buffer, bytes.byteOffset).getUint32(4, true);
      const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length))) as Header;
      return header.format === FORMAT ? new ShardReader(bytes, header, 8 + length, options) : null;
    }
    const parsed = JSON.parse(new TextDecoder().decode(bytes));
    const form = parsed?.format === LEGACY_FORMAT ? legacyForm(parsed, options) : parsed;
    // a whole MiniSearch index takes several times its stored size
    return new WholeShard(MiniSearch.loadJS(form, options), bytes.byteLength * 8);
  } catch {
    return null; // an index in another format: no hits rather than a failed chat
  }
}
