/**
 * Middleware at the edge of the app: security headers, request metrics and logs, CORS, and
 * traffic control (who is asking, rate limits, stream caps, load shedding). The cap on running
 * ingests is taken by the repo routes, which know whether a request starts an ingest. createApp
 * applies `trafficControl` to every /api route by route group; the single-purpose middleware it
 * is made of are exported for sub-apps, and each runs at most once per request, so applying one
 * again in a route file is harmless.
 */
import type { Context, MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import { routePath } from "hono/route";
import { concatBytes } from "../lib/bytes.ts";
import { secretMatches } from "../lib/api_keys.ts";
import { artifactId } from "../lib/artifacts.ts";
import { streamCapsFor } from "../lib/caps.ts";
import { clientOf } from "../lib/client.ts";
import type { PolicyName } from "../lib/config.ts";
import type { AppDeps } from "../lib/deps.ts";
import { AppError } from "../lib/errors.ts";
import { keys } from "../lib/keys.ts";
import { metrics } from "../lib/metrics.ts";
import { type RateDecision, rateLimiterFor, rateLimitHeaders } from "../lib/rate_limit.ts";
import { isOptionalKind, shedderFor } from "../lib/shedding.ts";
import { onStreamClose } from "../lib/sse.ts";

/** No inline script or style: everything the page runs comes from this origin's files. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "media-src 'self' blob:",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'self'",
].join("; ");

const SECURITY_HEADERS: Record<string, string> = {
  "Content-Security-Policy": CONTENT_SECURITY_POLICY,
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  "X-Frame-Options": "DENY",
  "Cross-Origin-Opener-Policy": "same-origin",
};

const KNOWN_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);
const CATCH_ALL = new Set(["*", "/*", "/api/*"]);

// deno-lint-ignore no-explicit-any
type AnyContext = Context<any>;

/** Marks `name` done for this request; false when it already ran (applied twice). */
function once(c: AnyContext, name: string): boolean {
  const flag = `traffic:${name}`;
  if (c.get(flag)) return false;
  c.set(flag, true);
  return true;
}

/** The matched route template (`/api/repos/:repoId`), never the raw path: bounded label values. */
function routeLabel(c: AnyContext): string {
  const path = routePath(c, -1);
  return !path || CATCH_ALL.has(path) ? "unmatched" : path;
}

function setHeaders(c: AnyContext, headers: Record<string, string>): void {
  try {
    for (const [k, v] of Object.entries(headers)) c.res.headers.set(k, v);
  } catch {
    // a response with immutable headers (e.g. one passed through from fetch): copy it first
    c.res = new Response(c.res.body, c.res);
    for (const [k, v] of Object.entries(headers)) c.res.headers.set(k, v);
  }
}

/**
 * Outermost middleware: security headers on every response (errors included), the request
 * counter and latency histogram, and one structured log line with the request id (never headers,
 * query strings or bodies, so no secrets).
 */
export function edge(deps: Pick<AppDeps, "log">): MiddlewareHandler {
  return async (c, next) => {
    const start = performance.now();
    await next();
    const seconds = (performance.now() - start) / 1000;
    setHeaders(c, SECURITY_HEADERS);
    const route = routeLabel(c);
    const method = KNOWN_METHODS.has(c.req.method) ? c.req.method : "OTHER";
    const status = c.res.status;
    metrics.httpRequests.inc({ route, method, status });
    metrics.httpDuration.observe({ route, method }, seconds);
    deps.log.info("request", {
      requestId: c.get("requestId"),
      method,
      route,
      path: c.req.path.slice(0, 300),
      status,
      ms: Math.round(seconds * 10_000) / 10,
    });
  };
}

/** CORS for /api from the configured origins only; no CORS headers at all when none are set. */
export function corsForApi(deps: Pick<AppDeps, "config">): MiddlewareHandler {
  const allowed = new Set(deps.config.corsOrigins);
  if (!allowed.size) return (_c, next) => next();
  return cors({
    origin: (origin) => (allowed.has(origin) ? origin : null),
    allowMethods: ["GET", "HEAD", "POST", "DELETE"],
    allowHeaders: ["Content-Type", "Authorization", "Last-Event-ID", "X-Request-Id"],
    exposeHeaders: ["RateLimit", "RateLimit-Policy", "Retry-After", "X-Request-Id"],
    maxAge: 600,
  });
}

/** Identifies the caller (401 invalid_api_key for a bad or revoked key) before anything else runs. */
export function identifyClient(deps: Pick<AppDeps, "kv" | "config">): MiddlewareHandler {
  return async (c, next) => {
    if (c.req.method !== "OPTIONS") await clientOf(deps, c);
    await next();
  };
}

/** This request's own rate-limit decision under `policy`, if a rateLimit middleware made one. */
export function decisionOf(c: AnyContext, policy: PolicyName): Promise<RateDecision> | undefined {
  return c.get(`traffic:decision:${policy}`);
}

/** 429 rate_limited with Retry-After and the RateLimit headers. */
export class RateLimitedError extends AppError {
  constructor(d: RateDecision) {
    super(
      429,
      "rate_limited",
      `Too many ${d.policy} requests: the limit is ${d.limit} per ${d.windowSeconds} s. Try again in ${d.resetSeconds} s.`,
      { policy: d.policy, limit: d.limit, windowSeconds: d.windowSeconds, retryAfterSeconds: d.resetSeconds },
      { ...rateLimitHeaders(d), "Retry-After": String(d.resetSeconds) },
    );
  }
}

/**
 * Rate-limits a route by `policy` (per client, exact across instances through KV) and sets the
 * `RateLimit-Policy` / `RateLimit` headers; 429 rate_limited with Retry-After past the limit.
 */
export function rateLimit(
  deps: Pick<AppDeps, "kv" | "clock" | "config">,
  policy: PolicyName,
): MiddlewareHandler {
  return async (c, next) => {
    if (!once(c, `rate:${policy}`)) return await next();
    const client = await clientOf(deps, c);
    const limiter = rateLimiterFor(deps);
    // A read with headroom runs while its admission commits (the KV round trip overlaps the
    // handler's own reads); its answer is released only once admitted, and dropped otherwise.
    // Writes, and clients at their limit, wait for admission first.
    const method = c.req.method;
    const { headroom, decision: admission } = limiter.begin(policy, client);
    c.set(`traffic:decision:${policy}`, admission);
    if ((method === "GET" || method === "HEAD") && headroom) {
      await next();
      const decision = await admission.catch((e) => e as Error);
      if (decision instanceof Error || !decision.allowed) {
        await c.res.body?.cancel().catch(() => {});
        // forget the dropped answer, or Hono would copy its headers onto the error response
        c.res = undefined as unknown as Response;
        throw decision instanceof Error ? decision : new RateLimitedError(decision);
      }
      setHeaders(c, rateLimitHeaders(decision));
      return;
    }
    const decision = await admission;
    if (!decision.allowed) throw new RateLimitedError(decision);
    await next();
    setHeaders(c, rateLimitHeaders(decision));
  };
}

/**
 * Caps open SSE streams per client and per process (429 too_many_streams / 503 overloaded). The
 * slot is released when the stream ends, fails or the client disconnects; non-stream answers
 * (errors) release it at once.
 */
export function limitStreams(deps: Pick<AppDeps, "kv" | "config">): MiddlewareHandler {
  return async (c, next) => {
    if (!once(c, "streams")) return await next();
    const client = await clientOf(deps, c);
    const slot = streamCapsFor(deps).acquire(client.id);
    try {
      await next();
    } catch (e) {
      slot.release();
      throw e;
    }
    // held until the stream is over; any other answer (an error) frees it at once
    if (!onStreamClose(c.res, slot.release)) slot.release();
  };
}

const ARTIFACT_POST = /^\/api\/repos\/([A-Za-z0-9_-]{1,64})\/artifacts\/?$/;
const AUDIO_GET = /^\/api\/artifacts\/[^/]+\/audio\/?$/;

/** The most of a body `peekJson` reads (the artifacts route itself takes 4 KiB). */
const PEEK_BYTES = 16 * 1024;

/**
 * Reads the JSON body once, up to PEEK_BYTES (413 beyond, without reading the rest: a chunked body
 * has no Content-Length to check), and puts the bytes back as the request's body for the handler.
 * Null when it is not JSON. (A clone() would tee the stream and buffer all of the unread branch.)
 */
async function peekJson(c: AnyContext): Promise<unknown> {
  const stream = c.req.raw.body;
  if (!stream) return null;
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (let r = await reader.read(); !r.done; r = await reader.read()) {
    total += r.value.byteLength;
    if (total > PEEK_BYTES) {
      reader.cancel().catch(() => {});
      throw new AppError(413, "body_too_large", `The body is limited to ${PEEK_BYTES} bytes.`);
    }
    chunks.push(r.value);
  }
  const bytes = concatBytes(chunks, total);
  c.req.raw = new Request(c.req.raw, { body: bytes as Uint8Array<ArrayBuffer> });
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}

/** The optional kind a request would start, or null (not optional, or the artifact is finished). */
async function optionalKindOf(deps: AppDeps, c: AnyContext): Promise<string | null> {
  if ((c.req.method === "GET" || c.req.method === "HEAD") && AUDIO_GET.test(c.req.path)) return "audio";
  const m = c.req.method === "POST" ? ARTIFACT_POST.exec(c.req.path) : null;
  if (!m || Number(c.req.header("content-length") ?? 0) > PEEK_BYTES) return null;
  const body = await peekJson(c) as { kind?: unknown; expertise?: unknown; concept?: unknown } | null;
  const kind = body?.kind;
  if (typeof kind !== "string" || !isOptionalKind(kind)) return null;
  const expertise = typeof body?.expertise === "string" ? body.expertise : "intermediate";
  const concept = typeof body?.concept === "string" ? body.concept : undefined;
  const models = [deps.models.llm.model, deps.models.offline.model];
  const ids = await Promise.all(
    models.map((model) =>
      // deno-lint-ignore no-explicit-any
      artifactId(m[1], kind as any, { expertise: expertise as any, ...(concept ? { concept } : {}) }, model)
    ),
  );
  const found = await deps.kv.getMany<{ status?: string }[]>(ids.map((id) => keys.artifact(id)));
  return found.some((e) => e.value?.status === "done") ? null : kind;
}

/**
 * Refuses optional kinds (new podcast, slides and concepts artifacts; podcast audio) with 503
 * overloaded and Retry-After while the app sheds load. Overviews, chat and already finished
 * artifacts pass. Costs nothing while nothing is shed.
 */
export function shedOptional(deps: AppDeps): MiddlewareHandler {
  return async (c, next) => {
    if (!once(c, "shed")) return await next();
    const shedder = shedderFor(deps);
    if ((await shedder.state()).reasons.length) {
      const kind = await optionalKindOf(deps, c);
      if (kind) await shedder.assertAllowed(kind);
    }
    await next();
  };
}

/** The rate-limit policy of a request, by route group (API.md); null when none applies. */
export function routeGroup(method: string, path: string): PolicyName | null {
  if (!path.startsWith("/api/")) return null;
  if (method === "GET" || method === "HEAD") return "read";
  if (method !== "POST") return null;
  if (/^\/api\/repos(\/upload)?\/?$/.test(path)) return "ingest";
  if (ARTIFACT_POST.test(path)) return "generate";
  if (/^\/api\/repos\/[^/]+\/chat\/?$/.test(path)) return "chat";
  return null;
}

/** True for routes that answer with a Server-Sent Events stream. */
export function isStreamRoute(method: string, path: string): boolean {
  if (method === "GET") return /^\/api\/(jobs\/[^/]+\/events|artifacts\/[^/]+\/stream)\/?$/.test(path);
  return method === "POST" && /^\/api\/repos\/[^/]+\/chat\/?$/.test(path);
}

/**
 * Everything traffic control does for an /api request, in one middleware: CORS (when origins are
 * configured), who is asking (401 for a bad key), then by route group the rate limit, the stream
 * cap (SSE routes) and load shedding (optional kinds).
 */
export function trafficControl(deps: AppDeps): MiddlewareHandler {
  const corsMw = deps.config.corsOrigins.length ? corsForApi(deps) : null;
  const identify = identifyClient(deps);
  const limits = {
    read: rateLimit(deps, "read"),
    ingest: rateLimit(deps, "ingest"),
    generate: rateLimit(deps, "generate"),
    chat: rateLimit(deps, "chat"),
  };
  const streams = limitStreams(deps);
  const shed = shedOptional(deps);
  return async (c, next) => {
    const { method, path } = c.req;
    const chain: MiddlewareHandler[] = [];
    if (corsMw) chain.push(corsMw);
    const group = routeGroup(method, path);
    // a rate limit identifies the client first thing; other requests are identified here
    if (group) chain.push(limits[group]);
    else if (method !== "OPTIONS") chain.push(identify);
    if (isStreamRoute(method, path)) chain.push(streams);
    if (group === "generate" || AUDIO_GET.test(path)) chain.push(shed);
    const run = async (i: number): Promise<void> => {
      if (i === chain.length) return await next();
      // a middleware may answer by returning a response (the CORS preflight does)
      const answer = await chain[i](c, () => run(i + 1));
      if (answer instanceof Response) c.res = answer;
    };
    await run(0);
  };
}

/**
 * Admin-only routes: `Authorization: Bearer $ADMIN_TOKEN`, compared in constant time. Without
 * ADMIN_TOKEN the routes are open when `openWhenUnset` (/metrics, as API.md says) and refused
 * otherwise (the admin API).
 */
export function adminOnly(
  deps: Pick<AppDeps, "config">,
  options: { openWhenUnset: boolean },
): MiddlewareHandler {
  return async (c, next) => {
    const token = deps.config.adminToken;
    if (!token) {
      if (options.openWhenUnset) return await next();
      throw new AppError(403, "admin_disabled", "Set ADMIN_TOKEN to use the admin API.");
    }
    const m = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header("authorization") ?? "");
    if (!m || !(await secretMatches(m[1], token))) {
      throw new AppError(401, "unauthorized", "This needs the admin token.", {}, {
        "WWW-Authenticate": 'Bearer realm="admin"',
      });
    }
    await next();
  };
}
