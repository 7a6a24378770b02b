/**
 * The numbers of the files an ingest stored by number (`keys.repoFileByNumber`: they came out of
 * key order), found by path. They are written at the end of the ingest, in key order, as pages of up
 * to 512 paths, each under its first path: one page key per ~500 files instead of a key per file,
 * which took the synthetic ingest's end 142 ms against 12–18 ms, and an ingest of 50,000 files
 * 184 MB against 178 MB (docs/PERFORMANCE.md). A path's page is the last one whose first path is
 * not after it.
 */
import { keys } from "./keys.ts";
import type { KvBatch } from "./kv_util.ts";
import { utf8Length } from "./utf8.ts";

/** Paths in key order, and the number each one's file is stored under. */
interface FileNumberPage {
  paths: string[];
  numbers: number[];
}

const PAGE_PATHS = 512;
/** Well under KV's 64 KiB per value, however long the paths. */
const PAGE_BYTES = 32 * 1024;

/** KV's order of two strings: by UTF-8 bytes, that is by code points (not UTF-16 units, as `<`). */
export function compareKeyStrings(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

/** A UTF-16 unit's place in code point order: a surrogate (of a pair) comes after U+E000–U+FFFF. */
function codePointRank(unit: number): number {
  return unit < 0xd800 ? unit : unit < 0xe000 ? unit + 0x2000 : unit - 0x800;
}

/** Writes each path's number, as pages; `numbered` need not be in order. */
export async function writeFileNumbers(
  batch: Pick<KvBatch, "set">,
  repoId: string,
  gen: string,
  numbered: [path: string, n: number][],
): Promise<void> {
  numbered.sort(([a], [b]) => compareKeyStrings(a, b));
  let page: FileNumberPage = { paths: [], numbers: [] };
  let bytes = 0;
  for (const [path, n] of numbered) {
    const size = utf8Length(path) + 8;
    if (page.paths.length === PAGE_PATHS || (page.paths.length > 0 && bytes + size > PAGE_BYTES)) {
      await batch.set(keys.repoFileNumbers(repoId, gen, page.paths[0]), page);
      page = { paths: [], numbers: [] };
      bytes = 0;
    }
    page.paths.push(path);
    page.numbers.push(n);
    bytes += size;
  }
  if (page.paths.length > 0) await batch.set(keys.repoFileNumbers(repoId, gen, page.paths[0]), page);
}

/**
 * The number the file at `path` is stored under, or null when it is not stored by number. A repo
 * stored before the pages (2026-11-23) has a key per path instead, read when there is no page.
 */
export async function findFileNumber(
  kv: Deno.Kv,
  repoId: string,
  gen: string,
  path: string,
): Promise<number | null> {
  const prefix = keys.repoFileNumbersPrefix(repoId, gen);
  // (a NUL after the path: the first key past the path's own, so its own page is in the range)
  const pages = kv.list<FileNumberPage>({ prefix, end: [...prefix, `${path}\0`] }, {
    reverse: true,
    limit: 1,
  });
  for await (const { value } of pages) {
    let low = 0;
    let high = value.paths.length - 1;
    while (low <= high) {
      const middle = (low + high) >> 1;
      const order = compareKeyStrings(value.paths[middle], path);
      if (order === 0) return value.numbers[middle];
      if (order < 0) low = middle + 1;
      else high = middle - 1;
    }
    return null;
  }
  return (await kv.get<number>(keys.repoFileNumberOfPath(repoId, gen, path))).value;
}
