/**
 * A fake GitHub for tests and benchmarks: the three calls RepoLM makes (repo info, ref → sha,
 * codeload tarball) on 127.0.0.1, with private repos, request counters and injectable faults
 * (redirects, slow or truncated bodies, failing downloads).
 *
 * Run it alone with `deno run --allow-net tests/fakes/github.ts --port 8788 [--files N --bytes-per-file N]`:
 * it serves `acme/demo` (a few files) and `acme/synthetic` (generated sources) and prints the URLs.
 */
import { parseArgs } from "node:util";
import { buildTarGz, type FixtureEntry, syntheticRepoStream } from "./archives.ts";

/** Where an archive factory is asked for: the commit and GitHub's top folder name `owner-repo-sha7`. */
export type ArchiveRequest = { sha: string; folder: string };

/** A repository served by the fake, with its per-repo fault injection. */
export type RepoSpec = {
  owner: string;
  name: string;
  private?: boolean;
  /** Default `main`; it resolves even when absent from `refs`. */
  defaultBranch?: string;
  /** Ref name → 40-hex sha; every sha listed here also resolves to itself. */
  refs?: Record<string, string>;
  /** Bytes served as is, a fresh stream per download, or fixtures built as a tar.gz under `folder/`. */
  archive?: Uint8Array | ((req: ArchiveRequest) => ReadableStream<Uint8Array>) | FixtureEntry[];
  /** Private repos answer 404 unless `Authorization: Bearer TOKEN` (or `token TOKEN`) matches. */
  token?: string;
  /** A private repo anyone may see (as on some GitHub Enterprise setups): no 404, `private: true`. */
  visibleWithoutToken?: boolean;
  /** Codeload answers 302 to this Location. */
  redirectTo?: string;
  /** Pause before each body chunk. */
  delayMs?: number;
  /** Split the body into chunks of at most this size (default 64 KiB). */
  chunkBytes?: number;
  /** The first N downloads answer 500. */
  failDownloads?: number;
  /** Send only N body bytes, then break the connection. */
  truncateAt?: number;
};

/** Options of {@link startFakeGitHub}. */
export type FakeGitHubOptions = { port?: number };

/** One request received by the fake. */
export type RequestLogEntry = { method: string; path: string; auth?: string };

/** Request counters: `api` counts every API call (commits included), `downloads` every codeload call. */
export type RequestCounters = { api: number; commits: number; downloads: number; log: RequestLogEntry[] };

/** A running fake GitHub. */
export type FakeGitHub = {
  /** `http://127.0.0.1:PORT/api`, for `GITHUB_API_URL`. */
  apiUrl: string;
  /** `http://127.0.0.1:PORT/codeload`, for `GITHUB_CODELOAD_URL`. */
  codeloadUrl: string;
  /** Adds (or replaces) a repository. */
  addRepo(spec: RepoSpec): void;
  requests: RequestCounters;
  /** Breaks bodies still streaming and stops the server. */
  close(): Promise<void>;
};

type Repo = { spec: RepoSpec; branch: string; refs: Record<string, string>; downloads: number };

const DOCS = "https://docs.github.com/rest";
const DEFAULT_CHUNK = 64 * 1024;

/** Starts a fake GitHub API + codeload on 127.0.0.1 (a free port unless `port` is given). */
export function startFakeGitHub(options: FakeGitHubOptions = {}): Promise<FakeGitHub> {
  return Promise.try(() => serveFakeGitHub(options));
}

function serveFakeGitHub(options: FakeGitHubOptions): FakeGitHub {
  const repos = new Map<string, Repo>();
  const requests: RequestCounters = { api: 0, commits: 0, downloads: 0, log: [] };
  const closing = new AbortController();
  const handler = (req: Request) => route(req, { repos, requests, closing: closing.signal });
  const server = Deno.serve({ hostname: "127.0.0.1", port: options.port ?? 0, onListen() {} }, handler);
  const origin = `http://127.0.0.1:${server.addr.port}`;
  return {
    apiUrl: `${origin}/api`,
    codeloadUrl: `${origin}/codeload`,
    addRepo: (spec) => {
      repos.set(repoKey(spec.owner, spec.name), newRepo(spec));
    },
    requests,
    close: () => {
      closing.abort();
      return server.shutdown();
    },
  };
}

/** A deterministic fake 40-hex sha for any text. */
export function fakeSha(text: string): string {
  let out = "";
  for (let salt = 0; out.length < 40; salt++) out += fnv1a(`${salt}:${text}`).toString(16).padStart(8, "0");
  return out;
}

function newRepo(spec: RepoSpec): Repo {
  const branch = spec.defaultBranch ?? "main";
  const refs = { [branch]: fakeSha(`${spec.owner}/${spec.name}@${branch}`), ...spec.refs };
  return { spec, branch, refs, downloads: 0 };
}

// --- routing -----------------------------------------------------------------------------------

type Context = { repos: Map<string, Repo>; requests: RequestCounters; closing: AbortSignal };

const REPO_PATH = /^\/api\/repos\/([^/]+)\/([^/]+)$/;
const COMMIT_PATH = /^\/api\/repos\/([^/]+)\/([^/]+)\/commits\/(.+)$/;
const TARBALL_PATH = /^\/codeload\/([^/]+)\/([^/]+)\/tar\.gz\/(.+)$/;

function route(req: Request, ctx: Context): Promise<Response> | Response {
  const path = new URL(req.url).pathname;
  record(req, path, ctx.requests);
  if (req.method !== "GET") return path.startsWith("/api/") ? notFound() : codeloadNotFound();
  const auth = req.headers.get("authorization") ?? undefined;
  const [repoMatch, commitMatch, tarballMatch] = [REPO_PATH, COMMIT_PATH, TARBALL_PATH].map((re) =>
    decodeMatch(re, path)
  );
  if (repoMatch) return repoInfo(findRepo(ctx, repoMatch, auth));
  if (commitMatch) return commit(findRepo(ctx, commitMatch, auth), commitMatch[2], req.headers.get("accept"));
  if (tarballMatch) return download(findRepo(ctx, tarballMatch, auth), tarballMatch[2], ctx.closing);
  return path.startsWith("/codeload/") ? codeloadNotFound() : notFound();
}

function record(req: Request, path: string, requests: RequestCounters): void {
  requests.log.push({ method: req.method, path, auth: req.headers.get("authorization") ?? undefined });
  if (path.startsWith("/api/")) requests.api++;
  if (COMMIT_PATH.test(path)) requests.commits++;
  if (path.startsWith("/codeload/")) requests.downloads++;
}

/** The URL-decoded groups of `re` on `path`, or undefined (also for malformed escapes). */
function decodeMatch(re: RegExp, path: string): string[] | undefined {
  const match = re.exec(path);
  try {
    return match?.slice(1).map(decodeURIComponent);
  } catch {
    return undefined;
  }
}

/** The repo when it exists and the caller may see it (GitHub hides private repos behind a 404). */
function findRepo(ctx: Context, [owner, name]: string[], auth: string | undefined): Repo | undefined {
  const repo = ctx.repos.get(repoKey(owner, name));
  if (!repo?.spec.private || repo.spec.visibleWithoutToken) return repo;
  return repo.spec.token !== undefined && bearer(auth) === repo.spec.token ? repo : undefined;
}

function bearer(auth: string | undefined): string | undefined {
  return /^(?:bearer|token)\s+(\S+)$/i.exec(auth ?? "")?.[1];
}

function repoKey(owner: string, name: string): string {
  return `${owner}/${name}`.toLowerCase();
}

function resolveRef(repo: Repo, ref: string): string | undefined {
  if (Object.hasOwn(repo.refs, ref)) return repo.refs[ref];
  return Object.values(repo.refs).find((sha) => sha === ref.toLowerCase());
}

// --- API -----------------------------------------------------------------------------------------

function repoInfo(repo: Repo | undefined): Response {
  if (!repo) return notFound();
  const { owner, name } = repo.spec;
  return Response.json({
    name,
    full_name: `${owner}/${name}`,
    owner: { login: owner },
    private: repo.spec.private ?? false,
    default_branch: repo.branch,
  });
}

function commit(repo: Repo | undefined, ref: string, accept: string | null): Response {
  if (!repo) return notFound();
  const sha = resolveRef(repo, ref);
  if (!sha) {
    return Response.json({ message: `No commit found for SHA: ${ref}`, documentation_url: DOCS }, {
      status: 422,
    });
  }
  if (accept?.includes("application/vnd.github.sha")) {
    return new Response(sha, { headers: { "content-type": "text/plain" } });
  }
  return Response.json({ sha });
}

function notFound(): Response {
  return Response.json({ message: "Not Found", documentation_url: DOCS }, { status: 404 });
}

// --- codeload ------------------------------------------------------------------------------------

async function download(repo: Repo | undefined, ref: string, closing: AbortSignal): Promise<Response> {
  const sha = repo && resolveRef(repo, ref);
  if (!repo || !sha) return codeloadNotFound();
  const { spec } = repo;
  if (++repo.downloads <= (spec.failDownloads ?? 0)) {
    return new Response("500 Internal Server Error", { status: 500 });
  }
  if (spec.redirectTo) return new Response(null, { status: 302, headers: { location: spec.redirectTo } });
  const folder = `${spec.owner}-${spec.name}-${sha.slice(0, 7)}`;
  const body = shapeBody(await archiveStream(spec, { sha, folder }), spec, closing);
  const headers = new Headers({
    "content-type": "application/x-gzip",
    "content-disposition": `attachment; filename=${folder}.tar.gz`,
  });
  if (spec.truncateAt !== undefined) headers.set("content-length", String(spec.truncateAt + 1));
  return new Response(body, { headers });
}

function codeloadNotFound(): Response {
  return new Response("404: Not Found", { status: 404, headers: { "content-type": "text/plain" } });
}

async function archiveStream(spec: RepoSpec, req: ArchiveRequest): Promise<ReadableStream<Uint8Array>> {
  const archive = spec.archive ?? [{ path: "README.md", content: `# ${spec.name}\n` }];
  if (typeof archive === "function") return archive(req);
  const bytes = archive instanceof Uint8Array
    ? archive
    : await buildTarGz(archive, { prefix: req.folder, comment: req.sha });
  return ReadableStream.from([bytes]);
}

/**
 * The archive re-chunked, paced and cut at `truncateAt`. A truncated body is announced with a
 * Content-Length one byte longer, so the connection breaks (without Deno logging a body error).
 * Bodies still streaming when the server closes just end early, so `close()` never waits on them.
 */
function shapeBody(
  source: ReadableStream<Uint8Array>,
  spec: RepoSpec,
  closing: AbortSignal,
): ReadableStream<Uint8Array<ArrayBuffer>> {
  const chunks = rechunk(source, spec.chunkBytes ?? DEFAULT_CHUNK);
  const limit = spec.truncateAt ?? Infinity;
  const stopped = new AbortController();
  let sent = 0;
  let onClosing = () => {};
  const finish = () => {
    closing.removeEventListener("abort", onClosing);
    stopped.abort();
    chunks.return(undefined).catch(() => {});
  };
  return new ReadableStream({
    start(controller) {
      onClosing = () => {
        finish();
        controller.close();
      };
      closing.addEventListener("abort", onClosing, { once: true });
    },
    async pull(controller) {
      if (spec.delayMs) await sleep(spec.delayMs, stopped.signal);
      const next = sent < limit && !stopped.signal.aborted ? await chunks.next() : { done: true as const };
      if (stopped.signal.aborted) return;
      if (next.done) {
        finish();
        return controller.close();
      }
      const chunk = next.value.subarray(0, limit - sent);
      sent += chunk.length;
      controller.enqueue(new Uint8Array(chunk));
    },
    cancel: finish,
  });
}

/** The stream's chunks, each split to at most `size` bytes. */
async function* rechunk(source: ReadableStream<Uint8Array>, size: number): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) {
    for (let at = 0; at < chunk.length; at += size) yield chunk.subarray(at, at + size);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  return hash >>> 0;
}

// --- standalone ----------------------------------------------------------------------------------

const DEMO_FILES: FixtureEntry[] = [
  { path: "README.md", content: "# demo\n\nA tiny repository served by the fake GitHub.\n" },
  { path: "deno.json", content: '{ "tasks": { "start": "deno run main.ts" } }\n' },
  { path: "main.ts", content: 'import { greet } from "./lib/greet.ts";\n\nconsole.log(greet("world"));\n' },
  {
    path: "lib/greet.ts",
    content:
      "/** Says hello. */\nexport function greet(name: string): string {\n  return `hello ${name}`;\n}\n",
  },
];

async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      port: { type: "string", default: "8788" },
      files: { type: "string", default: "2000" },
      "bytes-per-file": { type: "string", default: "4000" },
    },
  });
  const [files, bytesPerFile] = [Number(values.files), Number(values["bytes-per-file"])];
  const github = await startFakeGitHub({ port: Number(values.port) });
  github.addRepo({ owner: "acme", name: "demo", archive: DEMO_FILES });
  github.addRepo({
    owner: "acme",
    name: "synthetic",
    archive: ({ folder }) => syntheticRepoStream({ files, bytesPerFile, prefix: folder, seed: 1 }),
  });
  console.log(`GITHUB_API_URL=${github.apiUrl}`);
  console.log(`GITHUB_CODELOAD_URL=${github.codeloadUrl}`);
  console.log(
    `repos: acme/demo (${DEMO_FILES.length} files), acme/synthetic (${files} files × ${bytesPerFile} bytes)`,
  );
}

if (import.meta.main) await main(Deno.args);
