/**
 * `deno task fuzz [--seed N] [--cases 20000] [--case I] [--process]`
 *
 * Fuzzes every JSON route, the upload route and the routes' path, query and header inputs with
 * generated malformed, oversized and hostile requests, reproducibly: case `i` of seed `s` is
 * always the same request (FUZZ_SEED=s FUZZ_CASE=i, or --seed s --case i, replays one). Promises
 * checked for every case: no 5xx, no hang, an error body of API.md's shape for every 4xx, an
 * X-Request-Id, no stack trace in any body, no unhandled rejection; and at the end, the data that
 * existed before (a repo, its files, a finished artifact, an API key) is unchanged, key by key.
 *
 * By default the app runs in this process (tests/helpers.ts startTestApp), which is fast; with
 * --process it is main.ts in a subprocess reached over real HTTP (the KV file is checked the same
 * way). tests/fuzz_test.ts runs a few thousand cases in CI.
 */
// Harness code reading arbitrary JSON answers of the API under test.
// deno-lint-ignore-file no-explicit-any
import { parseArgs } from "node:util";
import { Rng, seedFrom } from "./loadtest_rng.ts";
import { startAppProcess } from "./app_process.ts";
import {
  buildTar,
  buildTarGz,
  buildZip,
  corrupt,
  type FixtureEntry,
  gzipBomb,
  truncate,
} from "../tests/fakes/archives.ts";
import { type FakeGitHub, startFakeGitHub } from "../tests/fakes/github.ts";
import { postJson, startTestApp, waitFor } from "../tests/helpers.ts";
import { SAMPLE_REPO } from "../tests/model_fixtures.ts";

/** One generated request. */
export interface FuzzCase {
  index: number;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Uint8Array<ArrayBuffer> | string;
  /** What the generator meant to do, for the report. */
  what: string;
}

/** What the fuzzer needs of an app: send a request, read the KV snapshot. */
export interface FuzzTarget {
  fetch(req: Request): Promise<Response>;
  kv: Deno.Kv;
}

/** Ids of data that exists before the run. */
export interface Existing {
  repoId: string;
  artifactId: string;
  jobId: string;
  keyId: string;
  apiKey: string;
  adminToken: string;
}

export interface FuzzReport {
  seed: number;
  cases: number;
  statuses: Record<string, number>;
  problems: string[];
  /** KV entries per key family before and after. */
  families: { before: Record<string, number>; after: Record<string, number> };
}

/** Limits the fuzz app runs with: small, so "oversized" is cheap to send. */
export const FUZZ_ENV: Record<string, string> = {
  ADMIN_TOKEN: "fuzz-admin-token",
  TRUST_PROXY: "1",
  UPLOAD_MAX_BYTES: String(256 * 1024),
  MAX_FILES: "100",
  MAX_FILE_BYTES: String(64 * 1024),
  MAX_TOTAL_BYTES: String(2 * 1024 * 1024),
  MAX_DECOMPRESSED_BYTES: String(4 * 1024 * 1024),
  QUOTA_DAILY_TOKENS: "0",
  QUOTA_GLOBAL_DAILY_TOKENS: "0",
};

const encoder = new TextEncoder();

const HOSTILE_STRINGS = [
  "",
  " ",
  "\t\n",
  "../../../../etc/passwd",
  "..%2f..%2f..%2fetc%2fpasswd",
  "%00",
  "\u0000",
  "a\u0000b",
  "\ud800",
  "\udfff\ud800",
  "\u202eevil.txt",
  "\u200b\u200d\ufeff",
  "𝕏".repeat(100),
  "<script>alert(1)</script>",
  "'; DROP TABLE repos; --",
  "${jndi:ldap://127.0.0.1/x}",
  "{{constructor.constructor('return 1')()}}",
  "__proto__",
  "constructor",
  "prototype",
  "A".repeat(5000),
  "\r\nX-Injected: 1",
  "https://github.com/../../..",
  "http://127.0.0.1:1/acme/demo",
  "file:///etc/passwd",
  "javascript:alert(1)",
  "https://github.com/acme/demo/tree/../../x",
  "https://github.com/acme/demo",
  "https://github.com/acme/demo/tree/main/src",
  "https://github.com/acme/demo.git",
  "https://evil.example/acme/demo",
  "git@github.com:acme/demo.git",
  "acme/demo",
  "acme/missing",
  "acme/demo/extra/parts",
  "//",
  "-1",
  "1e309",
  "NaN",
  "null",
  "true",
  "0x10",
  "*",
  "**/*",
  "[",
  "{a,b",
  "!(x)",
  "src/**",
  "README.md",
  "😀".repeat(50),
];

const KEYS = [
  "url",
  "ref",
  "include",
  "exclude",
  "kind",
  "expertise",
  "concept",
  "messages",
  "role",
  "content",
  "selection",
  "path",
  "startLine",
  "endLine",
  "name",
  "tier",
  "__proto__",
  "constructor",
  "x",
];

function randomString(r: Rng): string {
  if (r.chance(0.6)) return r.pick(HOSTILE_STRINGS);
  const n = r.pick([1, 2, 5, 20, 200, 3000]);
  let s = "";
  for (let i = 0; i < n; i++) s += String.fromCharCode(r.chance(0.8) ? r.int(32, 126) : r.int(0, 0xffff));
  return s;
}

function randomNumber(r: Rng): number {
  return r.pick([
    0,
    -0,
    1,
    -1,
    0.5,
    2 ** 31,
    2 ** 53 + 1,
    -(2 ** 63),
    1e308,
    Number.MIN_VALUE,
    400,
    401,
    1e6,
    3,
  ]);
}

/** A random JSON value, `depth` levels at most. */
function randomJson(r: Rng, depth = 3): unknown {
  const t = r.int(0, depth > 0 ? 6 : 3);
  if (t === 0) return null;
  if (t === 1) return r.chance(0.5);
  if (t === 2) return randomNumber(r);
  if (t === 3) return randomString(r);
  if (t === 4) return Array.from({ length: r.pick([0, 1, 2, 5, 60]) }, () => randomJson(r, depth - 1));
  const o: Record<string, unknown> = {};
  for (let i = r.pick([0, 1, 2, 4]); i > 0; i--) {
    o[r.chance(0.7) ? r.pick(KEYS) : randomString(r)] = randomJson(r, depth - 1);
  }
  return o;
}

/** A valid body for each JSON route, to mutate. */
function validBody(route: string, r: Rng): Record<string, unknown> {
  switch (route) {
    case "repos":
      return { url: r.pick(["acme/demo", "https://github.com/acme/demo", "acme/missing"]), ref: "main" };
    case "artifacts":
      return r.chance(0.5)
        ? { kind: r.pick(["overview", "slides", "podcast"]), expertise: r.pick(["beginner", "expert"]) }
        : { kind: "concepts", concept: "parsing" };
    case "chat":
      return {
        messages: [{ role: "user", content: "Where is parseWidget?" }],
        ...(r.chance(0.4)
          ? { selection: { path: r.pick(["src/parser.js", "日".repeat(700)]), startLine: 1, endLine: 10 } }
          : {}),
      };
    default:
      return { name: "fuzz key", tier: r.pick(["free", "pro", "anonymous", "gold"]) };
  }
}

/** Mutates a value: replace, delete or add fields, wrong types, deep nesting. */
function mutate(r: Rng, value: unknown, depth = 0): unknown {
  if (depth > 4) return value;
  if (value && typeof value === "object" && !Array.isArray(value)) {
    const o = { ...(value as Record<string, unknown>) };
    const keys = Object.keys(o);
    const op = r.int(0, 4);
    if (op === 0 && keys.length) delete o[r.pick(keys)];
    else if (op === 1) o[r.chance(0.5) ? r.pick(KEYS) : randomString(r)] = randomJson(r, 2);
    else if (op === 2 && keys.length) o[r.pick(keys)] = randomJson(r, 2);
    else if (keys.length) {
      const k = r.pick(keys);
      o[k] = mutate(r, o[k], depth + 1);
    }
    return o;
  }
  if (Array.isArray(value)) {
    const a = [...value];
    const op = r.int(0, 3);
    if (op === 0) {
      a.push(...Array.from({ length: r.pick([1, 60]) }, () => r.chance(0.5) ? a[0] : randomJson(r, 1)));
    } else if (op === 1) a.length = 0;
    else if (a.length) a[r.int(0, a.length - 1)] = mutate(r, a[r.int(0, a.length - 1)], depth + 1);
    return a;
  }
  return r.chance(0.5) ? randomJson(r, 1) : randomString(r);
}

/** A JSON route's body text: valid, mutated, malformed, oversized or not UTF-8. */
function jsonText(
  r: Rng,
  route: string,
  maxBytes: number,
): { body: string | Uint8Array<ArrayBuffer>; what: string } {
  const valid = validBody(route, r);
  const kind = r.int(0, 9);
  if (kind <= 1) return { body: JSON.stringify(valid), what: "valid" };
  if (kind <= 5) {
    let v: unknown = valid;
    for (let i = r.int(1, 3); i > 0; i--) v = mutate(r, v);
    return { body: JSON.stringify(v) ?? "null", what: "mutated" };
  }
  if (kind === 6) return { body: JSON.stringify(randomJson(r, 4)) ?? "null", what: "random JSON" };
  if (kind === 7) {
    const text = JSON.stringify(valid);
    const malformed = [
      text.slice(0, r.int(0, text.length - 1)),
      text + r.pick(["}", ",", "x", "\u0000"]),
      "{'kind': 'overview'}",
      '{"kind": NaN}',
      "[".repeat(r.pick([10, 5000, 100_000])),
      '{"a":'.repeat(2000),
      "\ufeff" + text,
      "",
      "null",
      "1",
      '"string"',
    ];
    return { body: r.pick(malformed), what: "malformed JSON" };
  }
  if (kind === 8) {
    const pad = "x".repeat(maxBytes + r.int(1, 4096));
    return { body: JSON.stringify({ ...valid, pad }), what: "oversized" };
  }
  const bytes = encoder.encode(JSON.stringify(valid));
  const bad = new Uint8Array(bytes.length + 4);
  bad.set(bytes);
  bad.set([0xff, 0xfe, 0xc3, 0x28], r.int(0, bytes.length));
  return { body: bad, what: "invalid UTF-8" };
}

const JSON_TYPES = [
  "application/json",
  "application/json; charset=utf-8",
  "application/json; charset=utf-16",
  "text/plain",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=x",
  "",
  "application/jsonx",
  "APPLICATION/JSON",
];

/** Archives the upload cases draw from (built once per seed, deterministic). */
export async function fuzzArchives(): Promise<{ name: string; bytes: Uint8Array<ArrayBuffer> }[]> {
  const small = await buildTarGz(SAMPLE_REPO);
  const hostile: FixtureEntry[] = [
    { path: "../evil.txt", content: "evil" },
    { path: "/abs/evil.txt", content: "evil" },
    { path: "a/../../b.txt", content: "evil" },
    { path: "C:\\windows\\evil.txt", content: "evil" },
    { path: "x\u0000y.txt", content: "nul" },
    { path: "link", type: "symlink", linkTarget: "/etc/passwd" },
    { path: "hard", type: "hardlink", linkTarget: "../evil.txt" },
    { path: "dir/", type: "directory" },
    { path: ".env", content: "OPENAI_API_KEY=sk-secret-value-000000000000000000000000" },
    { path: "README.md", content: "# ok\n" },
    { path: "README.md", content: "# duplicate\n" },
  ];
  const many: FixtureEntry[] = Array.from(
    { length: 130 },
    (_, i) => ({ path: `f/${i}.ts`, content: `export const a${i} = ${i};\n` }),
  );
  const bigFile: FixtureEntry[] = [{ path: "big.txt", content: "y".repeat(100 * 1024) }];
  const bombChunks: Uint8Array[] = [];
  for await (const c of gzipBomb(8 * 1024 * 1024)) bombChunks.push(c);
  const bomb = new Uint8Array(bombChunks.reduce((n, c) => n + c.length, 0));
  let off = 0;
  for (const c of bombChunks) bomb.set(c, off), off += c.length;
  return [
    { name: "small.tar.gz", bytes: small },
    { name: "hostile.tar.gz", bytes: await buildTarGz(hostile, { prefix: "top" }) },
    { name: "hostile.tar", bytes: await buildTar(hostile) },
    {
      name: "hostile.zip",
      bytes: buildZip(
        hostile.filter((e, i, a) => e.type !== "hardlink" && a.findIndex((x) => x.path === e.path) === i),
      ),
    },
    { name: "many.tar.gz", bytes: await buildTarGz(many) },
    { name: "big.tar.gz", bytes: await buildTarGz(bigFile) },
    { name: "bomb.tar.gz", bytes: bomb },
    { name: "corrupt.tar.gz", bytes: corrupt(small) },
    { name: "truncated.tar.gz", bytes: truncate(small, small.length >> 1) },
    { name: "empty.tar.gz", bytes: new Uint8Array(0) },
    { name: "gzip-header-only.tgz", bytes: small.slice(0, 10) },
    { name: "tar-as.zip", bytes: await buildTar(SAMPLE_REPO) },
  ];
}

function concatBytes(parts: (string | Uint8Array)[]): Uint8Array<ArrayBuffer> {
  const bytes = parts.map((p) => typeof p === "string" ? encoder.encode(p) : p);
  const out = new Uint8Array(bytes.reduce((n, b) => n + b.length, 0));
  let off = 0;
  for (const b of bytes) out.set(b, off), off += b.length;
  return out;
}

/** A multipart upload: a real, corrupted or random archive in a well- or badly-formed form. */
function uploadCase(r: Rng, archives: { name: string; bytes: Uint8Array<ArrayBuffer> }[], uploadMax: number) {
  const a = r.pick(archives);
  let bytes = a.bytes;
  const what: string[] = [a.name];
  if (r.chance(0.25) && bytes.length) {
    bytes = corrupt(bytes, r.int(0, bytes.length - 1), r.int(1, 64));
    what.push("corrupted");
  }
  if (r.chance(0.1)) {
    bytes = r.bytes(r.pick([1, 100, 5000]));
    what.push("noise");
  }
  if (r.chance(0.05)) {
    bytes = new Uint8Array(uploadMax + r.int(1, 70_000));
    what.push("oversized");
  }
  const boundary = r.chance(0.9) ? `----fuzz${r.int(0, 1e9)}` : randomString(r).slice(0, 80);
  const filename = r.chance(0.7) ? a.name : r.pick([
    "x.tar.gz",
    "../../x.tar.gz",
    "x.exe",
    "",
    "x.zip",
    "\u0000.tgz",
    "a".repeat(400) + ".tar",
    randomString(r),
  ]);
  const name = r.chance(0.85) ? "file" : r.pick(["File", "files", "", "upload", randomString(r)]);
  const parts: (string | Uint8Array)[] = [];
  if (r.chance(0.2)) {
    parts.push(
      `--${boundary}\r\nContent-Disposition: form-data; name="${r.pick(["include", "exclude"])}"\r\n\r\n${
        r.chance(0.5) ? "src/**" : randomString(r)
      }\r\n`,
    );
    what.push("filters");
  }
  const disposition = r.chance(0.9)
    ? `form-data; name="${name}"; filename="${filename}"`
    : r.pick(["form-data", `form-data; name="file"`, "attachment", randomString(r)]);
  parts.push(
    `--${boundary}\r\nContent-Disposition: ${disposition}\r\nContent-Type: application/octet-stream\r\n\r\n`,
    bytes,
    "\r\n",
  );
  if (r.chance(0.1)) {
    parts.push(
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="second.tar.gz"\r\n\r\n`,
      a.bytes,
      "\r\n",
    );
  }
  if (r.chance(0.9)) parts.push(`--${boundary}--\r\n`);
  else what.push("unterminated");
  const type = r.chance(0.85)
    ? `multipart/form-data; boundary=${r.chance(0.95) ? boundary : "other"}`
    : r.pick(["multipart/form-data", "application/json", "multipart/mixed; boundary=x", "", randomString(r)]);
  return {
    body: concatBytes(parts),
    headers: { "content-type": type },
    what: `upload ${what.join(" ")} (${name}, ${JSON.stringify(filename.slice(0, 40))})`,
  };
}

/** encodeURIComponent that accepts lone surrogates (they become U+FFFD). */
const enc = (s: string) => encodeURIComponent(s.toWellFormed());

function hostilePathPart(r: Rng, real: string): string {
  if (r.chance(0.5)) return real;
  return r.pick([
    enc(randomString(r)).slice(0, 300),
    "x".repeat(r.pick([64, 65, 3000])),
    "..",
    "%2e%2e",
    "%00",
    "%ZZ",
    "a%2Fb",
    "-_-",
    real + "x",
    real.toUpperCase(),
    "",
  ]);
}

/** Headers every case may carry: request ids, forwarded addresses, API keys, resumption, ranges. */
function fuzzHeaders(r: Rng, existing: Existing): Record<string, string> {
  const h: Record<string, string> = {};
  if (r.chance(0.2)) {
    h["x-request-id"] = r.pick([
      "ok-id-1",
      "x".repeat(200),
      "<bad id>",
      "\u00e9t\u00e9",
      randomString(r).replace(/[\r\n\0]/g, ""),
    ]);
  }
  if (r.chance(0.3)) {
    h["x-forwarded-for"] = r.pick([
      "203.0.113.9",
      "::1",
      "2001:db8::1, 10.0.0.1",
      "999.1.1.1",
      "unknown",
      "1.2.3.4:5",
      "[2001:db8::1]:80",
      "::ffff:1.2.3.4",
      ",,,",
      "x".repeat(5000),
      randomString(r).replace(/[\r\n\0]/g, ""),
    ]);
  }
  if (r.chance(0.15)) {
    h["authorization"] = r.pick([
      `Bearer ${existing.apiKey}`,
      "Bearer ",
      "Bearer nope",
      "Basic YWRtaW46YWRtaW4=",
      `Bearer ${existing.apiKey}x`,
      "bearer " + "k".repeat(3000),
      randomString(r).replace(/[\r\n\0]/g, ""),
    ]);
  }
  if (r.chance(0.1)) h["last-event-id"] = r.pick(["0", "-1", "1e3", "99999999999999999999", "abc", "3"]);
  if (r.chance(0.1)) {
    h["range"] = r.pick(["bytes=0-10", "bytes=-5", "bytes=10-1", "bytes=a-b", "items=0-1", "bytes=0-1,3-4"]);
  }
  return h;
}

/** Case `index` of `seed`: always the same request. */
export function generateCase(
  seed: number,
  index: number,
  existing: Existing,
  archives: { name: string; bytes: Uint8Array<ArrayBuffer> }[],
  uploadMax: number,
): FuzzCase {
  const r = new Rng((Math.imul(seed, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0);
  const headers = fuzzHeaders(r, existing);
  const repo = () => hostilePathPart(r, existing.repoId);
  const pick = r.int(0, 99);
  const json = (method: string, path: string, route: string, maxBytes: number): FuzzCase => {
    const { body, what } = jsonText(r, route, maxBytes);
    return {
      index,
      method,
      path,
      headers: { ...headers, "content-type": r.chance(0.85) ? "application/json" : r.pick(JSON_TYPES) },
      body,
      what: `${route} ${what}`,
    };
  };
  if (pick < 14) return json("POST", "/api/repos", "repos", 16 * 1024);
  if (pick < 30) return json("POST", `/api/repos/${repo()}/artifacts`, "artifacts", 4 * 1024);
  if (pick < 44) return json("POST", `/api/repos/${repo()}/chat`, "chat", 128 * 1024);
  if (pick < 50) {
    const c = json("POST", "/admin/keys", "admin", 4 * 1024);
    if (r.chance(0.7)) {
      c.headers.authorization = r.chance(0.7) ? `Bearer ${existing.adminToken}` : "Bearer wrong";
    }
    return c;
  }
  if (pick < 52) {
    // never the existing key with the right token: revoking it would be a legitimate change
    const id = r.pick(["nope", "x".repeat(65), "%00", enc(randomString(r)).slice(0, 100)]);
    return {
      index,
      method: "DELETE",
      path: `/admin/keys/${id}`,
      headers: { ...headers, authorization: r.chance(0.5) ? `Bearer ${existing.adminToken}` : "Bearer x" },
      what: "admin delete",
    };
  }
  if (pick < 66) {
    const u = uploadCase(r, archives, uploadMax);
    return {
      index,
      method: "POST",
      path: "/api/repos/upload",
      headers: { ...headers, ...u.headers },
      body: u.body,
      what: u.what,
    };
  }
  // reads, with hostile path parts, queries and headers
  const filePath = r.pick([
    "README.md",
    "src/parser.js",
    "../../etc/passwd",
    "%2e%2e/%2e%2e/x",
    "src%2Fparser.js",
    "a%00b",
    "%ZZ",
    "x".repeat(1100),
    encodeURIComponent("日".repeat(700)), // under 1,024 characters, over 2 KiB in a KV key
    "",
    "src/",
    "nope.txt",
  ]);
  const reads = [
    `/api/repos/${repo()}`,
    `/api/repos/${repo()}/tree`,
    `/api/repos/${repo()}/files/${filePath}`,
    `/api/repos/${repo()}/digest?maxTokens=${
      r.pick(["1", "0", "-5", "1.5", "abc", "100000001", "99999999999999999999", "", "20"])
    }`,
    `/api/jobs/${hostilePathPart(r, existing.jobId)}`,
    `/api/jobs/${hostilePathPart(r, existing.jobId)}/events`,
    `/api/artifacts/${hostilePathPart(r, existing.artifactId)}`,
    `/api/artifacts/${hostilePathPart(r, existing.artifactId)}/stream?from=${
      r.pick(["0", "1", "-1", "x", "", "999"])
    }`,
    `/api/artifacts/${hostilePathPart(r, existing.artifactId)}/audio`,
    "/api/usage",
    "/health",
    "/metrics",
    "//api//repos",
    `/api/repos/${"a/".repeat(r.pick([2, 300]))}`,
    "/api/../api/usage",
    `/${enc(randomString(r)).slice(0, 500)}`,
  ];
  const method = r.chance(0.85)
    ? "GET"
    : r.pick(["HEAD", "PUT", "PATCH", "DELETE", "OPTIONS", "POST", "TRACE"]);
  const withBody = method !== "GET" && method !== "HEAD" && r.chance(0.5);
  return {
    index,
    method,
    path: r.pick(reads),
    headers: withBody ? { ...headers, "content-type": "application/json" } : headers,
    body: withBody ? JSON.stringify(randomJson(r)) : undefined,
    what: `read ${method}`,
  };
}

function describe(c: FuzzCase): string {
  const body = c.body === undefined
    ? ""
    : typeof c.body === "string"
    ? ` body ${JSON.stringify(c.body.slice(0, 160))}${
      c.body.length > 160 ? `… (${c.body.length} chars)` : ""
    }`
    : ` body ${c.body.length} bytes`;
  return `case ${c.index} [${c.what}] ${c.method} ${c.path.slice(0, 160)} headers ${
    JSON.stringify(c.headers).slice(0, 300)
  }${body}`;
}

/** Reads a response body for at most `ms` (streams are cut), as text. */
async function readBody(res: Response, ms: number): Promise<{ text: string; timedOut: boolean }> {
  if (!res.body) return { text: "", timedOut: false };
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), ms));
  try {
    while (text.length < 2_000_000) {
      const next = await Promise.race([reader.read(), timeout]);
      if (next === "timeout") return { text, timedOut: true };
      if (next.done) break;
      text += decoder.decode(next.value, { stream: true });
    }
    return { text, timedOut: false };
  } finally {
    clearTimeout(timer);
    reader.cancel().catch(() => {});
  }
}

const STREAM_TYPES = /^text\/event-stream/;

/** Sends one case and returns what is wrong with the answer (empty when nothing). */
export async function runCase(
  target: FuzzTarget,
  c: FuzzCase,
  timeoutMs = 15_000,
): Promise<{ status: number; problems: string[] }> {
  let req: Request;
  try {
    req = new Request(`http://fuzz.local${c.path}`, { method: c.method, headers: c.headers, body: c.body });
  } catch {
    return { status: -1, problems: [] }; // not even a valid Request (e.g. a body on GET): nothing to send
  }
  let res: Response;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    res = await Promise.race([
      target.fetch(req),
      new Promise<never>((_, reject) => timer = setTimeout(() => reject(new Error("no answer")), timeoutMs)),
    ]);
  } catch (e) {
    return { status: 0, problems: [`${describe(c)}: ${(e as Error).message}`] };
  } finally {
    clearTimeout(timer);
  }
  const problems: string[] = [];
  const type = res.headers.get("content-type") ?? "";
  const stream = STREAM_TYPES.test(type);
  const { text, timedOut } = await readBody(res, stream ? 300 : timeoutMs);
  if (timedOut && !stream) problems.push(`${describe(c)}: the body did not end within ${timeoutMs} ms`);
  if (res.status >= 500) problems.push(`${describe(c)}: ${res.status} ${text.slice(0, 300)}`);
  if (!res.headers.get("x-request-id")) problems.push(`${describe(c)}: no X-Request-Id`);
  if (/\bat (?:file|ext|node):|Error: .*\n\s+at /.test(text)) {
    problems.push(`${describe(c)}: stack trace in the body`);
  }
  if (res.status >= 400 && c.method !== "HEAD") {
    let body: { error?: { code?: unknown; message?: unknown } } | null = null;
    try {
      body = JSON.parse(text);
    } catch { /* checked below */ }
    if (typeof body?.error?.code !== "string" || typeof body?.error?.message !== "string") {
      problems.push(`${describe(c)}: ${res.status} without an API.md error body: ${text.slice(0, 200)}`);
    }
  }
  return { status: res.status, problems };
}

/** KV entries per key family (first key part). */
async function families(kv: Deno.Kv): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for await (const e of kv.list({ prefix: [] })) out[String(e.key[0])] = (out[String(e.key[0])] ?? 0) + 1;
  return out;
}

/** Every KV entry of the existing data, as key → versionstamp. */
export async function snapshot(kv: Deno.Kv, existing: Existing): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const prefixes: Deno.KvKey[] = [
    ["repo", existing.repoId],
    ["repo_data", existing.repoId],
    ["artifact", existing.artifactId],
    ["artifact_text", existing.artifactId],
    ["job", existing.jobId],
    ["apikey_id", existing.keyId],
    ["apikey"],
  ];
  for (const prefix of prefixes) {
    const exact = await kv.get(prefix);
    if (exact.versionstamp) out.set(JSON.stringify(prefix), exact.versionstamp);
    for await (const e of kv.list({ prefix })) out.set(JSON.stringify(e.key), e.versionstamp);
  }
  return out;
}

/** Runs cases `from`..`to` - 1 of `seed` and checks the existing data did not change. */
export async function runFuzz(
  target: FuzzTarget,
  existing: Existing,
  opts: {
    seed: number;
    from?: number;
    to: number;
    uploadMax: number;
    log?: (s: string) => void;
    maxProblems?: number;
  },
): Promise<FuzzReport> {
  const archives = await fuzzArchives();
  const problems: string[] = [];
  const statuses: Record<string, number> = {};
  const before = await snapshot(target.kv, existing);
  const familiesBefore = await families(target.kv);
  const rejections: string[] = [];
  const onRejection = (e: PromiseRejectionEvent) => {
    e.preventDefault();
    rejections.push(String(e.reason?.stack ?? e.reason).slice(0, 300));
  };
  globalThis.addEventListener("unhandledrejection", onRejection);
  try {
    for (let i = opts.from ?? 0; i < opts.to; i++) {
      const c = generateCase(opts.seed, i, existing, archives, opts.uploadMax);
      const { status, problems: found } = await runCase(target, c);
      statuses[status] = (statuses[status] ?? 0) + 1;
      for (const p of found) problems.push(`FUZZ_SEED=${opts.seed} FUZZ_CASE=${i}: ${p}`);
      while (rejections.length) {
        problems.push(`FUZZ_SEED=${opts.seed} FUZZ_CASE=${i}: unhandled rejection ${rejections.shift()}`);
      }
      if (problems.length >= (opts.maxProblems ?? 20)) break;
      if (opts.log && (i + 1) % 1000 === 0) opts.log(`  ${i + 1} cases, ${problems.length} problems`);
    }
    // let jobs the valid requests started settle, then compare
    await new Promise((r) => setTimeout(r, 100));
    const after = await snapshot(target.kv, existing);
    for (const [key, stamp] of before) {
      if (!after.has(key)) problems.push(`seed ${opts.seed}: existing data ${key} was deleted`);
      else if (after.get(key) !== stamp) problems.push(`seed ${opts.seed}: existing data ${key} was changed`);
    }
    for (const key of after.keys()) {
      if (!before.has(key) && !key.startsWith('["apikey"')) {
        problems.push(`seed ${opts.seed}: new data under existing ${key}`);
      }
    }
  } finally {
    globalThis.removeEventListener("unhandledrejection", onRejection);
  }
  return {
    seed: opts.seed,
    cases: opts.to - (opts.from ?? 0),
    statuses,
    problems,
    families: { before: familiesBefore, after: await families(target.kv) },
  };
}

/** Creates the existing data through the API: a repo, a finished artifact, its job, an API key. */
export async function createExisting(
  fetchJson: (path: string, init?: RequestInit) => Promise<{ status: number; body: any }>,
): Promise<Existing> {
  const form = new FormData();
  form.append("file", new Blob([await buildTarGz(SAMPLE_REPO)]), "repo.tar.gz");
  const repo = await fetchJson("/api/repos/upload", { method: "POST", body: form });
  if (repo.status !== 200) throw new Error(`fuzz setup: upload ${repo.status} ${JSON.stringify(repo.body)}`);
  const asked = await fetchJson(`/api/repos/${repo.body.repo.id}/artifacts`, postJson({ kind: "overview" }));
  if (!asked.body?.job?.id) {
    throw new Error(`fuzz setup: artifact ${asked.status} ${JSON.stringify(asked.body)}`);
  }
  await waitFor(
    async () => (await fetchJson(`/api/artifacts/${asked.body.artifact.id}`)).body.status === "done",
    20_000,
    "the artifact",
  );
  const key = await fetchJson("/admin/keys", {
    ...postJson({ name: "existing", tier: "pro" }),
    headers: { "content-type": "application/json", authorization: `Bearer ${FUZZ_ENV.ADMIN_TOKEN}` },
  });
  if (key.status !== 201) throw new Error(`fuzz setup: key ${key.status} ${JSON.stringify(key.body)}`);
  return {
    repoId: repo.body.repo.id,
    artifactId: asked.body.artifact.id,
    jobId: asked.body.job.id,
    keyId: key.body.apiKey.id,
    apiKey: key.body.key,
    adminToken: FUZZ_ENV.ADMIN_TOKEN,
  };
}

/** Starts the fake GitHub the fuzz app points at (acme/demo exists; everything else is 404). */
export async function fuzzGitHub(): Promise<FakeGitHub> {
  const github = await startFakeGitHub();
  github.addRepo({ owner: "acme", name: "demo", archive: SAMPLE_REPO });
  return github;
}

export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      seed: { type: "string" },
      cases: { type: "string", default: "20000" },
      case: { type: "string" },
      process: { type: "boolean", default: false },
    },
  });
  const seed = values.seed ? Number(values.seed) >>> 0 : seedFrom("FUZZ_SEED");
  const only = values.case ?? Deno.env.get("FUZZ_CASE");
  const from = only ? Number(only) : 0;
  const to = only ? from + 1 : Number(values.cases);
  console.log(
    `fuzz seed ${seed}, cases ${from}..${to - 1}${
      values.process ? " against main.ts over HTTP" : " in process"
    }`,
  );
  const github = await fuzzGitHub();
  const env: Record<string, string> = {
    ...FUZZ_ENV,
    GITHUB_API_URL: github.apiUrl,
    GITHUB_CODELOAD_URL: github.codeloadUrl,
  };
  const options = {
    seed,
    from,
    to,
    uploadMax: Number(env.UPLOAD_MAX_BYTES),
    log: console.log,
    maxProblems: 50,
  };
  let report: FuzzReport;
  if (values.process) {
    const app = await startAppProcess({ ...env, LOG_LEVEL: "error" });
    const kv = await Deno.openKv(app.kvPath);
    try {
      const fetchJson = async (path: string, init?: RequestInit) => {
        const res = await fetch(app.url + path, init);
        const text = await res.text();
        return { status: res.status, body: text ? JSON.parse(text) : null };
      };
      const existing = await createExisting(fetchJson);
      const target: FuzzTarget = {
        kv,
        fetch: (req) => {
          const url = new URL(req.url);
          return fetch(app.url + url.pathname + url.search, req);
        },
      };
      report = await runFuzz(target, existing, options);
    } finally {
      kv.close();
      await app.stop();
    }
  } else {
    const app = await startTestApp({ env });
    try {
      const existing = await createExisting((path, init) => app.json(path, init));
      const target: FuzzTarget = {
        kv: app.deps.kv,
        fetch: async (req) => await app.fetch(new URL(req.url).pathname + new URL(req.url).search, req),
      };
      report = await runFuzz(target, existing, options);
    } finally {
      await app.close();
    }
  }
  await github.close();
  console.log(`statuses: ${JSON.stringify(report.statuses)}`);
  console.log(`KV families before: ${JSON.stringify(report.families.before)}`);
  console.log(`KV families after:  ${JSON.stringify(report.families.after)}`);
  for (const p of report.problems) console.log(`PROBLEM ${p}`);
  console.log(
    report.problems.length ? `${report.problems.length} problems (seed ${seed})` : `passed (seed ${seed})`,
  );
  return report.problems.length ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
