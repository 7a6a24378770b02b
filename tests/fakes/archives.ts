/**
 * Builders for test archives: small tar / tar.gz / zip fixtures in memory (hostile names kept
 * verbatim), plus streamed tar.gz generators (a gzip bomb, a synthetic repository) that are
 * produced while read, so multi-GB archives never sit in memory.
 *
 * Every entry gets a fixed mtime, so the same input always gives the same bytes.
 */
import { createTarPacker, type TarHeader } from "modern-tar";
import { gzipSync, type Zippable, zipSync } from "fflate";

/** One entry of a fixture archive; `path` is written verbatim (`../x`, `/abs`, NUL bytes allowed). */
export type FixtureEntry = {
  path: string;
  content?: string | Uint8Array;
  type?: "file" | "symlink" | "directory" | "hardlink";
  linkTarget?: string;
  mode?: number;
};

/** Options shared by the builders. */
export type ArchiveOptions = {
  /** Top folder prepended verbatim to every path (a trailing `/` is added), e.g. `owner-repo-abc1234/`. */
  prefix?: string;
  /** Tar only: pax global header `comment`, as `git archive` (and so GitHub) writes the commit sha. */
  comment?: string;
};

/** Options of {@link syntheticRepoStream}. */
export type SyntheticRepoOptions = {
  files: number;
  /** Exact size of every generated file. */
  bytesPerFile: number;
  prefix?: string;
  /** Same seed, same bytes (default 1). */
  seed?: number;
  /** The files listed in path order, as GitHub's archives list them (generated whole first, to sort). */
  sorted?: boolean;
};

/** A tar entry to stream: a header and the body chunks, produced on demand. */
type StreamEntry = { header: TarHeader; chunks?: Iterable<Uint8Array> };

const MTIME = new Date("2024-01-01T00:00:00Z");
const ZEROS = new Uint8Array(1 << 20);
const encoder = new TextEncoder();

/** A ustar/pax tar of the entries, in memory. */
export function buildTar(
  entries: FixtureEntry[],
  opts: ArchiveOptions = {},
): Promise<Uint8Array<ArrayBuffer>> {
  return collect(packEntries(fixtureEntries(entries, opts)));
}

/** A gzipped {@link buildTar}. */
export async function buildTarGz(
  entries: FixtureEntry[],
  opts: ArchiveOptions = {},
): Promise<Uint8Array<ArrayBuffer>> {
  return gzipSync(await buildTar(entries, opts), { mtime: MTIME });
}

/**
 * A zip of the entries (Unix attributes: symlinks are stored entries whose content is the target, with
 * mode 0o120777). Zip has no hard links and fflate takes entries as object keys, so duplicate paths throw.
 * `store`: every entry stored uncompressed, as `zip -0` (and zip tools for tiny files) write them.
 */
export function buildZip(
  entries: FixtureEntry[],
  opts: Pick<ArchiveOptions, "prefix"> & { store?: boolean } = {},
): Uint8Array<ArrayBuffer> {
  const prefix = normalizePrefix(opts.prefix);
  const files: Zippable = Object.create(null);
  if (prefix) files[prefix] = zipItem({ path: prefix, type: "directory" });
  for (const entry of entries) {
    const item = zipItem(entry);
    const name = prefix + (entry.type === "directory" ? asDirectory(entry.path) : entry.path);
    if (Object.hasOwn(files, name)) throw new Error(`buildZip: duplicate path ${JSON.stringify(name)}`);
    files[name] = item;
  }
  return zipSync(files, opts.store ? { level: 0 } : {});
}

/** A tar.gz whose one file holds `decompressedBytes` zeros, compressed while read (2 GiB → 2 MB in ~1.5 s). */
export function gzipBomb(
  decompressedBytes: number,
  opts: { prefix?: string; path?: string } = {},
): ReadableStream<Uint8Array<ArrayBuffer>> {
  const prefix = normalizePrefix(opts.prefix);
  const bomb = {
    header: fileHeader(prefix + (opts.path ?? "zeros.txt"), decompressedBytes),
    chunks: zeros(decompressedBytes),
  };
  return gzip(packEntries([...topFolder(prefix), bomb]));
}

/** A tar.gz of `files` generated TypeScript/JavaScript sources, deterministic from `seed`, generated while read. */
export function syntheticRepoStream(opts: SyntheticRepoOptions): ReadableStream<Uint8Array<ArrayBuffer>> {
  return gzip(packEntries(syntheticEntries(opts)));
}

/** A copy of `bytes` with `count` bytes inverted from `at` (default: the middle). */
export function corrupt(bytes: Uint8Array, at = bytes.length >> 1, count = 16): Uint8Array<ArrayBuffer> {
  const copy = bytes.slice();
  for (let i = at; i < Math.min(at + count, copy.length); i++) copy[i] ^= 0xff;
  return copy;
}

/** The first `n` bytes of `bytes` (a copy). */
export function truncate(bytes: Uint8Array, n: number): Uint8Array<ArrayBuffer> {
  return bytes.slice(0, n);
}

// --- tar packing -------------------------------------------------------------------------------

/** Streams a tar of the entries through modern-tar's packer, generated as read (≤ 8 MiB ahead: its buffer). */
function packEntries(entries: Iterable<StreamEntry>): ReadableStream<Uint8Array<ArrayBuffer>> {
  const { readable, controller } = createTarPacker();
  (async () => {
    for (const { header, chunks = [] } of entries) {
      const writer = controller.add(header).getWriter();
      for (const chunk of chunks) await writer.write(chunk);
      await writer.close();
    }
    controller.finalize();
  })().catch((err) => controller.error(err));
  return readable;
}

function gzip(tar: ReadableStream<Uint8Array<ArrayBuffer>>): ReadableStream<Uint8Array<ArrayBuffer>> {
  return tar.pipeThrough(new CompressionStream("gzip"));
}

async function collect(stream: ReadableStream<Uint8Array<ArrayBuffer>>): Promise<Uint8Array<ArrayBuffer>> {
  return await new Response(stream).bytes();
}

function* fixtureEntries(entries: FixtureEntry[], opts: ArchiveOptions): Iterable<StreamEntry> {
  const prefix = normalizePrefix(opts.prefix);
  if (opts.comment !== undefined) yield globalPax({ comment: opts.comment });
  yield* topFolder(prefix);
  for (const entry of entries) yield tarEntry(entry, prefix);
}

function tarEntry(entry: FixtureEntry, prefix: string): StreamEntry {
  const name = prefix + entry.path;
  switch (entry.type ?? "file") {
    case "file": {
      const body = toBytes(entry.content ?? "");
      return { header: { ...fileHeader(name, body.length), mode: entry.mode ?? 0o644 }, chunks: [body] };
    }
    case "directory":
      return {
        header: {
          name: asDirectory(name),
          type: "directory",
          size: 0,
          mode: entry.mode ?? 0o755,
          mtime: MTIME,
        },
      };
    case "symlink":
      return { header: linkHeader(name, "symlink", entry, 0o777) };
    case "hardlink":
      return { header: linkHeader(name, "link", entry, 0o644) };
  }
}

function linkHeader(name: string, type: "symlink" | "link", entry: FixtureEntry, mode: number): TarHeader {
  return { name, type, size: 0, linkname: entry.linkTarget ?? "", mode: entry.mode ?? mode, mtime: MTIME };
}

function fileHeader(name: string, size: number): TarHeader {
  return { name, size, type: "file", mode: 0o644, mtime: MTIME };
}

function topFolder(prefix: string): StreamEntry[] {
  return prefix ? [{ header: { name: prefix, type: "directory", size: 0, mode: 0o755, mtime: MTIME } }] : [];
}

/** A pax global header entry (modern-tar only writes per-entry pax records itself). */
function globalPax(records: Record<string, string>): StreamEntry {
  const body = encoder.encode(Object.entries(records).map(([k, v]) => paxRecord(k, v)).join(""));
  const header: TarHeader = {
    name: "pax_global_header",
    type: "pax-global-header",
    size: body.length,
    mtime: MTIME,
  };
  return { header, chunks: [body] };
}

/** `"<len> key=value\n"` where len counts the whole record, its own digits included. */
function paxRecord(key: string, value: string): string {
  const rest = encoder.encode(` ${key}=${value}\n`).length;
  let len = rest + 1;
  while (String(len).length + rest !== len) len = String(len).length + rest;
  return `${len} ${key}=${value}\n`;
}

function* zeros(total: number): Iterable<Uint8Array> {
  for (let left = total; left > 0; left -= ZEROS.length) {
    yield left >= ZEROS.length ? ZEROS : ZEROS.subarray(0, left);
  }
}

// --- zip ---------------------------------------------------------------------------------------

const UNIX = 3;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const DOS_DIRECTORY = 0x10;

function zipItem(entry: FixtureEntry): [Uint8Array, { os: number; attrs: number; mtime: Date; level?: 0 }] {
  const unix = (typeBits: number, mode: number) => ((typeBits | (entry.mode ?? mode)) << 16) >>> 0;
  switch (entry.type ?? "file") {
    case "file":
      return [toBytes(entry.content ?? ""), { os: UNIX, attrs: unix(S_IFREG, 0o644), mtime: MTIME }];
    case "directory":
      return [new Uint8Array(0), { os: UNIX, attrs: unix(S_IFDIR, 0o755) | DOS_DIRECTORY, mtime: MTIME }];
    case "symlink":
      return [toBytes(entry.linkTarget ?? ""), {
        os: UNIX,
        attrs: unix(S_IFLNK, 0o777),
        mtime: MTIME,
        level: 0,
      }];
    case "hardlink":
      throw new Error("buildZip: zip has no hard links");
  }
}

// --- synthetic sources -------------------------------------------------------------------------

const NOUNS = (
  "user account session token cache request response handler config value item list index count buffer " +
  "stream file path repo commit branch queue job worker event message error result options state store " +
  "record entry node tree graph edge score limit rate time date key name title content body header chunk " +
  "batch page offset size total status retry delay timeout signal client server route model prompt digest " +
  "summary artifact slide audio voice parser lexer scope module package version hash blob manifest schema " +
  "field column row table query filter format layout theme color widget button input form modal metric"
).split(" ");
const VERBS = (
  "get set load save build parse create update delete find fetch resolve handle process compute validate " +
  "format render emit read write open close start stop reset apply merge sort collect flush encode decode " +
  "normalize register schedule retry cancel ensure select prepare"
).split(" ");
const TYPES = [
  "string",
  "number",
  "boolean",
  "Uint8Array",
  "Date",
  "unknown",
  "string[]",
  "Map<string, number>",
];
const DIRS = [
  "src",
  "lib",
  "src/core",
  "src/utils",
  "src/api",
  "packages/cli/src",
  "packages/web/src",
  "test",
];
const EXTS = ["ts", "ts", "ts", "tsx", "js", "mjs"];
const COMMENTS = [
  "TODO: handle the empty case",
  "Keep this in sync with the schema",
  "The caller owns the buffer",
  "Retries are bounded by the limit",
  "Cheap check first, then the slow path",
];

/** A seeded random source (mulberry32). */
type Rng = { next(): number; int(n: number): number; pick<T>(items: readonly T[]): T };

function createRng(seed: number): Rng {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  return { next, int, pick: (items) => items[int(items.length)] };
}

function* syntheticEntries(opts: SyntheticRepoOptions): Iterable<StreamEntry> {
  const prefix = normalizePrefix(opts.prefix);
  const rng = createRng(opts.seed ?? 1);
  yield* topFolder(prefix);
  const files = (function* () {
    for (let i = 0; i < opts.files; i++) {
      const ext = rng.pick(EXTS);
      const path = `${rng.pick(DIRS)}/${rng.pick(VERBS)}${capitalize(rng.pick(NOUNS))}${i}.${ext}`;
      const body = encoder.encode(sourceText(rng, opts.bytesPerFile, !ext.includes("js")));
      yield { header: fileHeader(prefix + path, body.length), chunks: [body] };
    }
  })();
  yield* opts.sorted ? [...files].sort((a, b) => a.header.name < b.header.name ? -1 : 1) : files;
}

/** Exactly `bytes` ASCII bytes of plausible source: imports, declarations, then a comment to fill up. */
function sourceText(rng: Rng, bytes: number, typed: boolean): string {
  const lines = [...imports(rng)];
  let size = lines.reduce((n, line) => n + line.length + 1, 0);
  for (let misses = 0; misses < 4;) {
    const block = rng.pick(BLOCKS)(rng, typed);
    const blockSize = block.reduce((n, line) => n + line.length + 1, 0);
    if (size + blockSize > bytes) {
      misses++;
      continue;
    }
    lines.push(...block);
    size += blockSize;
  }
  return (lines.join("\n") + "\n" + filler(rng, bytes - size)).slice(0, bytes);
}

/** A `// words` comment line of exactly `bytes` bytes (newlines when too short for one). */
function filler(rng: Rng, bytes: number): string {
  if (bytes < 4) return "\n".repeat(Math.max(0, bytes));
  let text = "//";
  while (text.length < bytes - 1) text += ` ${rng.pick(NOUNS)}`;
  return `${text.slice(0, bytes - 1)}\n`;
}

function imports(rng: Rng): string[] {
  return Array.from({ length: 1 + rng.int(4) }, () => {
    const names = `${rng.pick(VERBS)}${capitalize(rng.pick(NOUNS))}, ${capitalize(rng.pick(NOUNS))}`;
    return `import { ${names} } from "../${rng.pick(NOUNS)}/${rng.pick(NOUNS)}.ts";`;
  });
}

type Block = (rng: Rng, typed: boolean) => string[];

const BLOCKS: Block[] = [
  (rng, typed) => {
    const [a, b] = [rng.pick(NOUNS), rng.pick(NOUNS)];
    const t = (type: string) => (typed ? `: ${type}` : "");
    return [
      `/** ${capitalize(rng.pick(VERBS))}s the ${a} of a ${b}. */`,
      `export function ${rng.pick(VERBS)}${capitalize(a)}(${b}${t(rng.pick(TYPES))}, limit${t("number")})${
        t(rng.pick(TYPES))
      } {`,
      `  const ${a}List = ${b}.${rng.pick(VERBS)}(limit);`,
      `  if (${a}List.length > ${rng.int(1000)}) {`,
      `    return ${rng.pick(VERBS)}${capitalize(rng.pick(NOUNS))}(${a}List);`,
      "  }",
      `  return ${a}List.map((${rng.pick(NOUNS)}) => ${rng.pick(NOUNS)}.${rng.pick(NOUNS)});`,
      "}",
      "",
    ];
  },
  (rng, typed) => {
    const name = capitalize(rng.pick(NOUNS)) + capitalize(rng.pick(NOUNS));
    const fields = Array.from({ length: 2 + rng.int(4) }, () => `  ${rng.pick(NOUNS)}: ${rng.pick(TYPES)};`);
    if (!typed) {
      return [`export const default${name} = Object.freeze({ ${rng.pick(NOUNS)}: ${rng.int(100)} });`, ""];
    }
    return [`export interface ${name} {`, ...fields, "}", ""];
  },
  (rng) => [
    `// ${rng.pick(COMMENTS)}.`,
    `const ${rng.pick(NOUNS)}${capitalize(rng.pick(NOUNS))} = await ${rng.pick(VERBS)}${
      capitalize(rng.pick(NOUNS))
    }(` +
    `"${rng.pick(NOUNS)}-${rng.int(100)}", { ${rng.pick(NOUNS)}: ${rng.int(10000)} });`,
    "",
  ],
  (rng, typed) => {
    const name = capitalize(rng.pick(NOUNS)) + rng.pick(["Service", "Manager", "Registry", "Client"]);
    const [field, verb] = [rng.pick(NOUNS), rng.pick(VERBS)];
    return [
      `export class ${name} {`,
      `  #${field} = new Map${typed ? "<string, number>" : ""}();`,
      typed ? `  ${verb}(key: string, value?: number): void {` : `  ${verb}(key, value) {`,
      `    for (const ${rng.pick(NOUNS)} of this.#${field}.values()) this.#${field}.delete(key);`,
      `    this.#${field}.set(key, value ?? ${rng.int(100)});`,
      "  }",
      "}",
      "",
    ];
  },
];

// --- helpers -----------------------------------------------------------------------------------

function normalizePrefix(prefix = ""): string {
  return prefix && !prefix.endsWith("/") ? `${prefix}/` : prefix;
}

function asDirectory(path: string): string {
  return path.endsWith("/") ? path : `${path}/`;
}

function toBytes(content: string | Uint8Array): Uint8Array {
  return typeof content === "string" ? encoder.encode(content) : content;
}

function capitalize(word: string): string {
  return word[0].toUpperCase() + word.slice(1);
}
