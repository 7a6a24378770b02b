/// <reference lib="deno.worker" />
/**
 * A Worker thread of the load test: runs its share of the simulated users until the scenario's
 * deadline and posts back per-operation samples (see loadtest_stats.ts). Requests with a plain
 * answer go through `fetch`; GET streams (artifact viewers, up to tens of thousands at once) are
 * raw HTTP/1.1 connections with a small chunked + SSE parser, as in fanout_viewers.ts, so the
 * client side stays cheap. Every user is its own client to the app: a distinct X-Forwarded-For
 * address (which the app trusts with TRUST_PROXY=1), unless the plan says otherwise.
 */
import { concatBytes } from "../lib/bytes.ts";
import { buildTarGz } from "../tests/fakes/archives.ts";
import { emptySamples, type OpSamples, type Samples } from "./loadtest_stats.ts";

export type Role = "health" | "reader" | "poller" | "viewer" | "viral" | "chatter" | "ingester";

/** What setup created for the users to act on. */
export interface Targets {
  repoId?: string;
  files?: string[];
  /** A finished artifact (readers and viewers). */
  doneArtifactId?: string;
  /** The new artifact every viral viewer watches. */
  liveArtifactId?: string;
  jobIds?: string[];
  questions?: string[];
}

export interface WorkerPlan {
  scenario: string;
  urls: string[];
  users: { index: number; role: Role }[];
  totalUsers: number;
  /** Epoch ms: users start from here (staggered), take no new action after `endAt`. */
  startAt: number;
  endAt: number;
  /** Epoch ms: anything still running is cut here. */
  hardEndAt: number;
  /** Users start spread evenly over this many ms (0: each at a random point of its first think time). */
  rampMs: number;
  /** Mean ms a user waits between actions (jittered ±50 %). */
  think: Partial<Record<Role, number>>;
  /** First address of the simulated users' X-Forwarded-For range; null sends none. */
  xffBase: number | null;
  apiKey?: string;
  timeoutMs: number;
  targets: Targets;
  /** Plain GETs over one raw keep-alive HTTP/1.1 connection per user (cheaper than fetch). */
  rawGets: boolean;
}

export interface WorkerReport {
  samples: Samples;
  /** Viral viewers' final texts by FNV-1a hash → count, to compare with the artifact. */
  texts: Record<string, number>;
  /** Viral viewers whose stream had not ended by the hard deadline. */
  unfinished: number;
}

const encoder = new TextEncoder();
const INTENDED_STREAM_ERRORS = new Set(["llm_unavailable", "overloaded", "rate_limited", "quota_exceeded"]);

/** The dotted address of the `n`-th simulated user: 10.0.0.0/8, wrapping. */
export function userAddress(n: number): string {
  const x = (n % 0xfffffe) + 1;
  return `10.${(x >>> 16) & 255}.${(x >>> 8) & 255}.${x & 255}`;
}

/** FNV-1a of a string, 8 hex digits. */
export function fnv(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16).padStart(8, "0");
}

let samples: Samples = {};
let texts: Record<string, number> = {};
let unfinished = 0;

function op(name: string): OpSamples {
  return samples[name] ??= emptySamples();
}

function example(s: OpSamples, text: string) {
  if (s.examples.length < 5) s.examples.push(text.slice(0, 300));
}

/** Records a plain answer: ok (2xx), intended (429/503 with Retry-After) or failure. */
function record(name: string, status: number, retryAfter: string | null, body: string, ms: number) {
  const s = op(name);
  if (status >= 200 && status < 300) {
    s.ok++;
    s.latency.push(ms);
    return;
  }
  let code = "";
  try {
    code = JSON.parse(body)?.error?.code ?? "";
  } catch { /* not JSON */ }
  const key = `${status} ${code || "no_code"}`;
  if ((status === 429 || status === 503) && retryAfter) s.intended[key] = (s.intended[key] ?? 0) + 1;
  else {
    s.failures[key] = (s.failures[key] ?? 0) + 1;
    example(s, `${name} → ${status} ${body}`);
  }
}

function fail(name: string, reason: string, detail = "") {
  const s = op(name);
  s.failures[reason] = (s.failures[reason] ?? 0) + 1;
  example(s, `${name} → ${reason} ${detail}`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));
const pick = <T>(xs: T[]): T => xs[Math.floor(Math.random() * xs.length)];

interface User {
  index: number;
  role: Role;
  base: string;
  headers: Record<string, string>;
}

async function timedFetch(user: User, name: string, path: string, init: RequestInit, plan: WorkerPlan) {
  const t0 = performance.now();
  if (!init.method && plan.rawGets) {
    const deadline = Math.min(Date.now() + plan.timeoutMs, plan.hardEndAt);
    try {
      const res = await rawGet(user, path, deadline);
      record(name, res.status, res.retryAfter, res.body, performance.now() - t0);
      return res;
    } catch (e) {
      const message = (e as Error).message ?? String(e);
      fail(name, message === "timeout" ? "timeout" : `network: ${message.slice(0, 60)}`);
      return null;
    }
  }
  try {
    const res = await fetch(user.base + path, {
      ...init,
      headers: { ...user.headers, ...init.headers as Record<string, string> },
      signal: AbortSignal.timeout(Math.min(plan.timeoutMs, Math.max(1, plan.hardEndAt - Date.now()))),
    });
    const body = await res.text();
    record(name, res.status, res.headers.get("retry-after"), body, performance.now() - t0);
    return { status: res.status, body };
  } catch (e) {
    const reason = e instanceof DOMException && e.name === "TimeoutError"
      ? "timeout"
      : `network: ${(e as Error).message?.slice(0, 60)}`;
    fail(name, reason);
    return null;
  }
}

// --- SSE parsing ---------------------------------------------------------------------------------

interface StreamState {
  t0: number;
  firstEventAt?: number;
  text: string;
  /** "done", "error", or undefined while open. */
  end?: "done" | "error";
  errorCode?: string;
  lastSeq: number;
  seqError?: string;
  headersAt?: number;
}

/** Feeds SSE text; returns the unparsed rest. */
function feedSse(state: StreamState, pending: string): string {
  let cut: number;
  while ((cut = pending.indexOf("\n\n")) !== -1) {
    const block = pending.slice(0, cut);
    pending = pending.slice(cut + 2);
    let event = "message";
    let data = "";
    let id: string | undefined;
    let real = false;
    for (const line of block.split("\n")) {
      if (line.startsWith(":") || !line) continue;
      real = true;
      if (line.startsWith("event: ")) event = line.slice(7);
      else if (line.startsWith("data: ")) data = line.slice(6);
      else if (line.startsWith("id: ")) id = line.slice(4);
    }
    if (!real) continue;
    state.firstEventAt ??= performance.now();
    if (event === "delta") {
      try {
        state.text += JSON.parse(data).text ?? "";
      } catch {
        state.seqError ??= "bad delta data";
      }
      if (id !== undefined) {
        const seq = Number(id);
        if (seq <= state.lastSeq && state.lastSeq > 0) {
          state.seqError ??= `sequence ${seq} after ${state.lastSeq}`;
        }
        state.lastSeq = seq;
      }
    } else if (event === "done") state.end = "done";
    else if (event === "error") {
      state.end = "error";
      try {
        state.errorCode = JSON.parse(data).code;
      } catch {
        state.errorCode = "unparsable";
      }
    }
    if (state.end) break;
  }
  return pending;
}

function indexOfBytes(hay: Uint8Array, needle: Uint8Array, from = 0): number {
  outer: for (let i = from; i <= hay.length - needle.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (!a.length) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

const CRLF = encoder.encode("\r\n");
const HEADER_END = encoder.encode("\r\n\r\n");

interface RawResponse {
  status: number;
  retryAfter: string | null;
  /** The body arrived whole (or the reader chose to stop). */
  complete: boolean;
  /** The server will close the connection (or already did). */
  closes: boolean;
}

/**
 * Reads one HTTP/1.1 response from `conn`: headers, then a body framed by Content-Length,
 * chunked transfer coding or the connection's end, handing body bytes to `onData`; `stop()`
 * returning true ends the read early (a stream that got its last event).
 */
async function readResponse(
  conn: Deno.TcpConn,
  onData: (bytes: Uint8Array, status: number) => void,
  stop: () => boolean = () => false,
  onHeaders: () => void = () => {},
): Promise<RawResponse> {
  let buf: Uint8Array = new Uint8Array(0);
  let status = 0;
  let retryAfter: string | null = null;
  let headersDone = false;
  let mode: "length" | "chunked" | "close" = "close";
  let left = 0; // Content-Length bytes still to come
  let closes = false;
  let expect: "size" | "data" | "crlf" | "trailer" = "size";
  let chunkLeft = 0;
  const readBuf = new Uint8Array(16 * 1024);
  while (true) {
    if (headersDone) {
      if (mode === "length") {
        const take = Math.min(left, buf.length);
        if (take) onData(buf.subarray(0, take), status);
        left -= take;
        buf = buf.slice(take);
        if (left === 0) return { status, retryAfter, complete: true, closes };
      } else if (mode === "close") {
        if (buf.length) onData(buf, status);
        buf = new Uint8Array(0);
      } else {
        while (buf.length) {
          if (expect === "size") {
            const eol = indexOfBytes(buf, CRLF);
            if (eol === -1) break;
            chunkLeft = parseInt(new TextDecoder().decode(buf.subarray(0, eol)), 16);
            buf = buf.slice(eol + 2);
            expect = chunkLeft === 0 ? "trailer" : "data";
          } else if (expect === "data") {
            const take = Math.min(chunkLeft, buf.length);
            onData(buf.subarray(0, take), status);
            chunkLeft -= take;
            buf = buf.slice(take);
            if (chunkLeft === 0) expect = "crlf";
          } else {
            // the CRLF after a chunk's data, or the empty line that ends the trailer section
            if (buf.length < 2) break;
            buf = buf.slice(2);
            if (expect === "trailer") return { status, retryAfter, complete: true, closes };
            expect = "size";
          }
        }
      }
      if (stop()) return { status, retryAfter, complete: true, closes: true };
    }
    const n = await conn.read(readBuf);
    if (n === null) return { status, retryAfter, complete: headersDone && mode === "close", closes: true };
    buf = concat(buf, readBuf.slice(0, n));
    if (!headersDone) {
      const end = indexOfBytes(buf, HEADER_END);
      if (end === -1) continue;
      const head = new TextDecoder().decode(buf.subarray(0, end));
      buf = buf.slice(end + 4);
      headersDone = true;
      onHeaders();
      status = Number(head.slice(9, 12));
      retryAfter = /\r\nretry-after:\s*(\S+)/i.exec(head)?.[1] ?? null;
      closes = /\r\nconnection:\s*close/i.test(head);
      const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
      if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) mode = "chunked";
      else if (length) {
        mode = "length";
        left = Number(length[1]);
      } else mode = "close";
    }
  }
}

function requestHead(user: User, url: URL, path: string, extra: string): Uint8Array {
  let head = `GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\n${extra}`;
  for (const [k, v] of Object.entries(user.headers)) head += `${k}: ${v}\r\n`;
  return encoder.encode(head + "\r\n");
}

/**
 * A GET stream over raw HTTP/1.1 (its own connection, closed after). Resolves with the HTTP
 * status, the stream's state and, for a non-200 answer, its body; ends on `done`/`error`, the
 * connection closing, or the hard deadline.
 */
async function rawStream(user: User, path: string, hardEndAt: number) {
  const url = new URL(user.base);
  const state: StreamState = { t0: performance.now(), text: "", lastSeq: 0 };
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({ hostname: url.hostname, port: Number(url.port || 80) });
  } catch (e) {
    return {
      status: 0,
      state,
      body: "",
      retryAfter: null,
      error: `connect: ${(e as Error).message.slice(0, 60)}`,
    };
  }
  const timer = setTimeout(() => {
    try {
      conn.close();
    } catch { /* closed */ }
  }, Math.max(1, hardEndAt - Date.now()));
  let status = 0;
  let retryAfter: string | null = null;
  let body = "";
  let error: string | undefined;
  const decoder = new TextDecoder();
  let pending = "";
  try {
    await conn.write(requestHead(user, url, path, "Accept: text/event-stream\r\nConnection: close\r\n"));
    const res = await readResponse(
      conn,
      (bytes, s) => {
        const text = decoder.decode(bytes, { stream: true });
        if (s === 200) pending = feedSse(state, pending + text);
        else body += text;
      },
      () => state.end !== undefined,
      () => state.headersAt = performance.now(),
    );
    status = res.status;
    retryAfter = res.retryAfter;
  } catch (e) {
    error = `read: ${(e as Error).message.slice(0, 60)}`;
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed */ }
  }
  return { status, state, body, retryAfter, error };
}

/** One keep-alive connection per user for plain GETs, as a browser keeps one. */
const connections = new Map<number, Deno.TcpConn>();

function dropConnection(user: User) {
  try {
    connections.get(user.index)?.close();
  } catch { /* closed */ }
  connections.delete(user.index);
}

/**
 * A plain GET over the user's keep-alive connection. A connection the server closed while idle is
 * replaced and the request sent again (only when no byte of an answer came back: GETs are safe).
 */
async function rawGet(
  user: User,
  path: string,
  deadline: number,
): Promise<{ status: number; retryAfter: string | null; body: string }> {
  const url = new URL(user.base);
  for (let attempt = 0;; attempt++) {
    let conn = connections.get(user.index);
    const reused = conn !== undefined;
    if (!conn) {
      conn = await Deno.connect({ hostname: url.hostname, port: Number(url.port || 80) });
      connections.set(user.index, conn);
    }
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      dropConnection(user);
    }, Math.max(1, deadline - Date.now()));
    const chunks: Uint8Array[] = [];
    try {
      await conn.write(requestHead(user, url, path, ""));
      const res = await readResponse(conn, (bytes) => chunks.push(bytes.slice()));
      if (res.status === 0 && reused && attempt === 0 && !timedOut) {
        dropConnection(user); // closed while idle: a new connection, the same request
        continue;
      }
      if (res.closes || !res.complete) dropConnection(user);
      if (!res.complete) throw new Error(timedOut ? "timeout" : "connection closed mid-answer");
      const body = new TextDecoder().decode(concatBytes(chunks));
      return { status: res.status, retryAfter: res.retryAfter, body };
    } catch (e) {
      dropConnection(user);
      if (timedOut) throw new Error("timeout");
      if (reused && attempt === 0 && chunks.length === 0) continue;
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Records a stream's outcome: ok with latency and first-event time, intended, or a failure. */
function recordStream(
  name: string,
  r: { status: number; state: StreamState; body: string; retryAfter: string | null; error?: string },
  hardEndReached: boolean,
): boolean {
  const { state } = r;
  if (r.status === 0) {
    fail(name, r.error ?? "connect failed");
    return false;
  }
  if (r.status !== 200) {
    record(name, r.status, r.retryAfter, r.body, performance.now() - state.t0);
    return false;
  }
  const s = op(name);
  if (state.seqError) {
    fail(name, "bad sequence", state.seqError);
    return false;
  }
  if (state.end === "done") {
    s.ok++;
    s.latency.push(performance.now() - state.t0);
    if (state.firstEventAt !== undefined) s.ttfe.push(state.firstEventAt - state.t0);
    if (state.headersAt !== undefined) s.ttfb.push(state.headersAt - state.t0);
    return true;
  }
  if (state.end === "error") {
    const key = `event error ${state.errorCode}`;
    if (INTENDED_STREAM_ERRORS.has(state.errorCode ?? "")) s.intended[key] = (s.intended[key] ?? 0) + 1;
    else fail(name, key);
    return false;
  }
  fail(
    name,
    hardEndReached ? "stream still open at the deadline" : "stream cut before done/error",
    r.error ?? "",
  );
  return false;
}

// --- roles ---------------------------------------------------------------------------------------

async function readOnce(user: User, plan: WorkerPlan) {
  const t = plan.targets;
  const repo = t.repoId!;
  const choice = Math.random();
  if (choice < 0.3) await timedFetch(user, "GET /api/repos/:id", `/api/repos/${repo}`, {}, plan);
  else if (choice < 0.5) {
    const file = pick(t.files ?? ["README.md"]);
    await timedFetch(user, "GET /api/repos/:id/files/*", `/api/repos/${repo}/files/${file}`, {}, plan);
  } else if (choice < 0.7) {
    await timedFetch(user, "GET /api/repos/:id/tree", `/api/repos/${repo}/tree`, {}, plan);
  } else if (choice < 0.95 && t.doneArtifactId) {
    await timedFetch(user, "GET /api/artifacts/:id", `/api/artifacts/${t.doneArtifactId}`, {}, plan);
  } else {
    await timedFetch(user, "GET /api/repos/:id/digest", `/api/repos/${repo}/digest?maxTokens=4000`, {}, plan);
  }
}

async function chatOnce(user: User, plan: WorkerPlan) {
  const name = "POST /api/repos/:id/chat";
  const question = pick(plan.targets.questions ?? ["What does this repository do?"]);
  const state: StreamState = { t0: performance.now(), text: "", lastSeq: 0 };
  try {
    const res = await fetch(`${user.base}/api/repos/${plan.targets.repoId}/chat`, {
      method: "POST",
      headers: { ...user.headers, "content-type": "application/json" },
      body: JSON.stringify({ messages: [{ role: "user", content: question }] }),
      signal: AbortSignal.timeout(Math.max(1, plan.hardEndAt - Date.now())),
    });
    state.headersAt = performance.now();
    if (res.status !== 200 || !res.body) {
      record(
        name,
        res.status,
        res.headers.get("retry-after"),
        await res.text(),
        performance.now() - state.t0,
      );
      return;
    }
    const decoder = new TextDecoder();
    let pending = "";
    const reader = res.body.getReader();
    while (!state.end) {
      const { done, value } = await reader.read();
      if (done) break;
      pending = feedSse(state, pending + decoder.decode(value, { stream: true }));
    }
    await reader.cancel().catch(() => {});
    recordStream(name, { status: 200, state, body: "", retryAfter: null }, false);
  } catch (e) {
    const timeout = e instanceof DOMException && e.name === "TimeoutError";
    if (timeout && state.firstEventAt !== undefined) fail(name, "stream still open at the deadline");
    else fail(name, timeout ? "timeout" : `network: ${(e as Error).message?.slice(0, 60)}`);
  }
}

async function ingestOnce(user: User, plan: WorkerPlan, n: number) {
  const archive = await buildTarGz([
    { path: "README.md", content: `# load test repo ${user.index}-${n}\n\nMade by the load test.\n` },
    { path: "src/main.ts", content: `export const user = ${user.index};\nexport const upload = ${n};\n` },
    {
      path: "src/util.ts",
      content: `/** Doubles. */\nexport function twice(x: number) {\n  return 2 * x;\n}\n`,
    },
  ]);
  const form = new FormData();
  form.append("file", new Blob([archive]), `load-${user.index}-${n}.tar.gz`);
  const answer = await timedFetch(user, "POST /api/repos/upload", "/api/repos/upload", {
    method: "POST",
    body: form,
  }, plan);
  if (answer?.status === 200) {
    const id = JSON.parse(answer.body).repo.id;
    await timedFetch(user, "GET /api/repos/:id", `/api/repos/${id}`, {}, plan);
  }
}

async function viewOnce(user: User, plan: WorkerPlan, artifactId: string, name: string) {
  const r = await rawStream(user, `/api/artifacts/${artifactId}/stream`, plan.hardEndAt);
  const hardEnd = Date.now() >= plan.hardEndAt - 5;
  const ok = recordStream(name, r, hardEnd);
  return { ok, text: r.state.text, open: r.status === 200 && !r.state.end };
}

async function runUser(user: User, plan: WorkerPlan): Promise<void> {
  const think = plan.think[user.role] ?? 1000;
  const n = plan.totalUsers;
  const offset = plan.rampMs > 0 ? (plan.rampMs * user.index) / n : Math.random() * think;
  await sleep(plan.startAt + offset - Date.now());
  if (user.role === "viral") {
    const r = await viewOnce(user, plan, plan.targets.liveArtifactId!, "GET /api/artifacts/:id/stream");
    if (r.ok) texts[fnv(r.text)] = (texts[fnv(r.text)] ?? 0) + 1;
    if (r.open) unfinished++;
    return;
  }
  let count = 0;
  while (Date.now() < plan.endAt) {
    const started = Date.now();
    switch (user.role) {
      case "health":
        await timedFetch(user, "GET /health", "/health", {}, plan);
        break;
      case "reader":
        await readOnce(user, plan);
        break;
      case "poller":
        await timedFetch(user, "GET /api/jobs/:id", `/api/jobs/${pick(plan.targets.jobIds!)}`, {}, plan);
        break;
      case "viewer":
        await viewOnce(user, plan, plan.targets.doneArtifactId!, "GET /api/artifacts/:id/stream");
        break;
      case "chatter":
        await chatOnce(user, plan);
        break;
      case "ingester":
        await ingestOnce(user, plan, count);
        break;
    }
    count++;
    // a fixed pace per user (think time measured from the start of the action), jittered
    const wait = think * (0.5 + Math.random()) - (Date.now() - started);
    await sleep(Math.min(wait, plan.endAt - Date.now()));
  }
}

self.onmessage = async (e: MessageEvent<{ op: "run"; plan: WorkerPlan }>) => {
  const { plan } = e.data;
  samples = {};
  texts = {};
  unfinished = 0;
  const users: User[] = plan.users.map(({ index, role }) => {
    const headers: Record<string, string> = {};
    if (plan.xffBase !== null) headers["X-Forwarded-For"] = userAddress(plan.xffBase + index);
    if (plan.apiKey) headers["Authorization"] = `Bearer ${plan.apiKey}`;
    return { index, role, base: plan.urls[index % plan.urls.length], headers };
  });
  await Promise.all(
    users.map((u) => runUser(u, plan).catch((err) => fail(`user ${u.role}`, `crash: ${err}`))),
  );
  for (const u of users) dropConnection(u);
  self.postMessage({ samples, texts, unfinished } satisfies WorkerReport);
};
