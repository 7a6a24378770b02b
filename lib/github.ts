/**
 * The only code that talks to GitHub. It builds every URL from the configured API and codeload
 * bases plus validated owner/name/ref parts, and follows redirects only to those same origins,
 * so no user input can make the server connect anywhere else (SSRF).
 */
import { AppError, LimitError, PermanentJobError } from "./errors.ts";
import type { GitHubTarget } from "./github_url.ts";
import { keys } from "./keys.ts";

export interface GitHubConfig {
  apiUrl: string;
  codeloadUrl: string;
  token?: string;
  /** Deadline for resolving a repo (the API calls a request waits on); 15 s by default. */
  timeoutMs?: number;
}

export interface ResolvedRepo {
  owner: string;
  name: string;
  ref: string;
  sha: string;
  defaultBranch: string;
  private: boolean;
}

const RESOLVE_CACHE_MS = 60_000;
const RESOLVE_TIMEOUT_MS = 15_000;
const MAX_REDIRECTS = 3;

function headers(config: GitHubConfig, accept: string): HeadersInit {
  const h: Record<string, string> = {
    Accept: accept,
    "User-Agent": "RepoLM",
    "X-GitHub-Api-Version": "2022-11-28",
  };
  if (config.token) h.Authorization = `Bearer ${config.token}`;
  return h;
}

/** GET that follows at most a few redirects, and only to the configured GitHub origins. */
export async function fetchGitHub(
  config: GitHubConfig,
  url: string,
  accept: string,
  signal?: AbortSignal,
): Promise<Response> {
  const allowed = new Set([new URL(config.apiUrl).origin, new URL(config.codeloadUrl).origin]);
  let current = new URL(url);
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    if (!allowed.has(current.origin)) {
      throw new PermanentJobError(
        "unsupported_host",
        "GitHub redirected to a host RepoLM does not contact.",
        422,
      );
    }
    let res: Response;
    try {
      res = await fetch(current, { headers: headers(config, accept), redirect: "manual", signal });
    } catch {
      if (signal?.aborted) throw signal.reason;
      throw new AppError(502, "github_unavailable", "GitHub could not be reached; try again in a moment.");
    }
    if (res.status < 300 || res.status >= 400) return res;
    await res.body?.cancel();
    const location = res.headers.get("location");
    if (!location) {
      throw new AppError(502, "github_unavailable", "GitHub answered a redirect without a location.");
    }
    current = new URL(location, current);
  }
  throw new AppError(502, "github_unavailable", "GitHub redirected too many times.");
}

function path(part: string): string {
  return encodeURIComponent(part);
}

async function failure(res: Response, target: GitHubTarget, what: "repo" | "ref"): Promise<never> {
  await res.body?.cancel();
  const remaining = res.headers.get("x-ratelimit-remaining");
  if (res.status === 429 || (res.status === 403 && remaining === "0")) {
    const reset = Number(res.headers.get("x-ratelimit-reset") ?? 0) * 1000;
    const retry = Number(res.headers.get("retry-after") ?? 0) || Math.max(60, (reset - Date.now()) / 1000);
    throw new LimitError(
      503,
      "github_rate_limited",
      "GitHub's rate limit was reached; try again later.",
      retry,
    );
  }
  const full = `${target.owner}/${target.name}`;
  if (res.status === 401 || res.status === 403) {
    throw new AppError(403, "repo_private", `${full} is private or not visible to RepoLM's GitHub token.`);
  }
  if (res.status === 404 || res.status === 422) {
    throw what === "repo"
      ? new AppError(
        404,
        "repo_not_found",
        `No public repository ${full} was found. If it is private, the server needs a GITHUB_TOKEN that can read it.`,
      )
      : new AppError(404, "repo_not_found", `${full} has no branch, tag or commit "${target.ref}".`);
  }
  throw new AppError(502, "github_unavailable", `GitHub answered ${res.status}; try again shortly.`);
}

/**
 * Resolves a target to its commit: default branch and privacy from `GET /repos/O/R`, the sha from
 * `GET /repos/O/R/commits/REF`. Cached briefly in KV so a burst of requests costs two calls.
 * A request waits on this, so it has a deadline: a GitHub that does not answer is a 504.
 */
export async function resolveRepo(
  kv: Deno.Kv,
  config: GitHubConfig,
  target: GitHubTarget,
): Promise<ResolvedRepo> {
  const signal = AbortSignal.timeout(config.timeoutMs ?? RESOLVE_TIMEOUT_MS);
  try {
    return await resolveUncached(kv, config, target, signal);
  } catch (e) {
    if (e instanceof AppError || !signal.aborted) throw e;
    throw new AppError(504, "github_unavailable", "GitHub did not answer in time; try again shortly.");
  }
}

async function resolveUncached(
  kv: Deno.Kv,
  config: GitHubConfig,
  target: GitHubTarget,
  signal: AbortSignal,
): Promise<ResolvedRepo> {
  const cacheKey = keys.githubResolve(
    target.owner.toLowerCase(),
    target.name.toLowerCase(),
    target.ref ?? "",
  );
  const cached = await kv.get<ResolvedRepo & { at: number }>(cacheKey);
  if (cached.value && Date.now() - cached.value.at < RESOLVE_CACHE_MS) {
    const { at: _at, ...resolved } = cached.value;
    return resolved;
  }
  const repoUrl = `${config.apiUrl}/repos/${path(target.owner)}/${path(target.name)}`;
  const repoRes = await fetchGitHub(config, repoUrl, "application/vnd.github+json", signal);
  if (!repoRes.ok) await failure(repoRes, target, "repo");
  const info = await repoRes.json() as { default_branch?: string; private?: boolean; full_name?: string };
  if (info.private && !config.token) {
    throw new AppError(403, "repo_private", `${target.owner}/${target.name} is private.`);
  }
  const defaultBranch = info.default_branch || "main";
  const ref = target.ref ?? defaultBranch;
  const shaRes = await fetchGitHub(
    config,
    `${repoUrl}/commits/${path(ref)}`,
    "application/vnd.github.sha",
    signal,
  );
  if (!shaRes.ok) await failure(shaRes, { ...target, ref }, "ref");
  const sha = (await shaRes.text()).trim();
  if (!/^[0-9a-f]{40}$/.test(sha)) {
    throw new AppError(502, "github_unavailable", "GitHub answered an unexpected commit id.");
  }
  const [owner, name] = (info.full_name ?? "").split("/");
  const resolved: ResolvedRepo = {
    owner: owner || target.owner,
    name: name || target.name,
    ref,
    sha,
    defaultBranch,
    private: Boolean(info.private),
  };
  await kv.set(cacheKey, { ...resolved, at: Date.now() }, { expireIn: RESOLVE_CACHE_MS });
  return resolved;
}

/** Opens the codeload tar.gz of a commit; the caller streams and cancels the body. */
export async function openArchive(
  config: GitHubConfig,
  repo: { owner: string; name: string; sha: string },
  signal?: AbortSignal,
): Promise<{ body: ReadableStream<Uint8Array>; size: number | null }> {
  const url = `${config.codeloadUrl}/${path(repo.owner)}/${path(repo.name)}/tar.gz/${repo.sha}`;
  const res = await fetchGitHub(config, url, "application/x-gzip", signal);
  if (!res.ok || !res.body) {
    await res.body?.cancel();
    if (res.status === 404) {
      throw new PermanentJobError("repo_not_found", "GitHub has no archive for that commit.", 404);
    }
    throw new AppError(502, "github_unavailable", `GitHub's archive download answered ${res.status}.`);
  }
  const length = Number(res.headers.get("content-length"));
  return { body: res.body, size: Number.isFinite(length) && length > 0 ? length : null };
}
