/// <reference lib="dom" />
/** The HTTP contract of ../shared/API.md as the page uses it: types, requests, and kind errors. */

export interface RepoSource {
  type: "github" | "upload";
  owner?: string;
  name?: string;
  ref?: string;
  sha?: string;
  subpath?: string;
  filename?: string;
}

export interface Repo {
  id: string;
  status: "ingesting" | "ready" | "failed";
  source: RepoSource;
  stats: { files: number; skipped: number; bytes: number; tokens: number; languages: Record<string, number> };
  error?: { code: string; message: string };
  createdAt: string;
  expiresAt: string;
}

export interface Job {
  id: string;
  type: "ingest" | "generate";
  status: "queued" | "running" | "succeeded" | "failed" | "canceled";
  progress: { phase: string; done: number; total: number };
  attempts: number;
  error?: { code: string; message: string };
  queuePosition?: number;
  etaSeconds?: number;
  subject: { repoId?: string; artifactId?: string };
}

export interface TreeFile {
  path: string;
  bytes: number;
  tokens: number;
  language?: string;
  priority?: number;
}

export interface Tree {
  files: TreeFile[];
  skipped: { path: string; reason: string }[];
}

export type ArtifactKind = "overview" | "slides" | "podcast" | "concepts";
export type Expertise = "beginner" | "intermediate" | "expert";

export interface Artifact {
  id: string;
  repoId: string;
  kind: ArtifactKind;
  options: { expertise?: Expertise; concept?: string };
  status: "queued" | "generating" | "done" | "failed";
  content?: string;
  model?: string;
  offline: boolean;
  error?: { code: string; message: string };
  /** Podcasts only: whether recorded audio exists (GET …/audio). */
  audio?: "none" | "generating" | "ready" | "failed";
}

export interface Source {
  path: string;
  startLine: number;
  endLine: number;
  score?: number;
}

/** An error the API answered (or the network failed with); `message` is meant for people. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Seconds to wait before trying again (from Retry-After), when the server said. */
    readonly retryAfter?: number,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

const FALLBACK: Record<number, string> = {
  400: "That request was not understood.",
  404: "That could not be found; it may have expired.",
  413: "That upload is too large.",
  429: "Too many requests right now.",
  500: "Something went wrong on the server.",
  502: "The server could not reach a service it needs.",
  503: "The server is busy right now.",
  504: "The server took too long to answer.",
};

/** Seconds from a Retry-After header (seconds or an HTTP date). */
export function parseRetryAfter(value: string | null): number | undefined {
  if (!value) return undefined;
  const n = Number(value);
  if (Number.isFinite(n)) return Math.max(0, Math.ceil(n));
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

/** Reads the API's error body (`{error: {code, message}}`) from a failed response. */
export async function errorFrom(res: Response): Promise<ApiError> {
  let code = `http_${res.status}`;
  let message = FALLBACK[res.status] ?? `The server answered ${res.status}.`;
  let details: Record<string, unknown> = {};
  try {
    const body = await res.json();
    if (body?.error && typeof body.error.message === "string") {
      code = String(body.error.code ?? code);
      message = body.error.message;
      details = body.error;
    }
  } catch {
    // not JSON: keep the fallback sentence
  }
  return new ApiError(res.status, code, message, parseRetryAfter(res.headers.get("retry-after")), details);
}

/** The same, from an XMLHttpRequest that finished with an error status. */
export function errorFromXhr(xhr: XMLHttpRequest): ApiError {
  let code = `http_${xhr.status}`;
  let message = FALLBACK[xhr.status] ?? `The server answered ${xhr.status}.`;
  let details: Record<string, unknown> = {};
  try {
    const body = JSON.parse(xhr.responseText);
    if (body?.error && typeof body.error.message === "string") {
      code = String(body.error.code ?? code);
      message = body.error.message;
      details = body.error;
    }
  } catch {
    // keep the fallback
  }
  return new ApiError(
    xhr.status,
    code,
    message,
    parseRetryAfter(xhr.getResponseHeader("retry-after")),
    details,
  );
}

/** The error for a request that never got an answer. */
export function networkError(): ApiError {
  return new ApiError(0, "network", "RepoLM could not be reached. Check your connection, then try again.");
}

/** fetch() that turns network failures and non-2xx answers into ApiError. Aborts pass through. */
export async function request(path: string, init: RequestInit = {}): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(path, init);
  } catch (e) {
    if ((e as Error).name === "AbortError") throw e;
    throw networkError();
  }
  if (!res.ok) throw await errorFrom(res);
  return res;
}

/** GET a JSON document. */
export async function getJson<T>(path: string, signal?: AbortSignal): Promise<T> {
  const res = await request(path, { headers: { accept: "application/json" }, signal });
  return await res.json() as T;
}

/** POST JSON, read JSON, keep the status (202 and 200 mean different things). */
export async function postJson<T>(
  path: string,
  body: unknown,
  signal?: AbortSignal,
): Promise<{ status: number; body: T }> {
  const res = await request(path, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify(body),
    signal,
  });
  return { status: res.status, body: await res.json() as T };
}

/** `/api/repos/ID/files/a/b c.ts`, each segment encoded. */
export function fileUrl(repoId: string, path: string): string {
  return `/api/repos/${encodeURIComponent(repoId)}/files/${
    path.split("/").map(encodeURIComponent).join("/")
  }`;
}
