import { z } from "zod";

/** A rate-limit policy: `limit` requests per `windowSeconds`. */
export interface RatePolicy {
  limit: number;
  windowSeconds: number;
}

export type PolicyName = "read" | "ingest" | "generate" | "chat";

const DEFAULT_RATE_LIMITS = "read=120/1m,ingest=5/1h,generate=20/1h,chat=20/1h";
const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** Parses `read=120/1m,ingest=5/1h` into policies; unknown names or malformed parts are errors. */
export function parseRateLimits(text: string): Record<PolicyName, RatePolicy> {
  const policies = parseRateLimitParts(DEFAULT_RATE_LIMITS);
  Object.assign(policies, parseRateLimitParts(text));
  return policies;
}

function parseRateLimitParts(text: string): Record<PolicyName, RatePolicy> {
  const out = {} as Record<PolicyName, RatePolicy>;
  for (const part of text.split(",").map((p) => p.trim()).filter(Boolean)) {
    const m = /^(read|ingest|generate|chat)=(\d+)\/([1-9]\d*)?([smhd])$/.exec(part);
    if (!m) throw new Error(`"${part}" is not NAME=COUNT/WINDOW with a window above 0 (e.g. read=120/1m)`);
    out[m[1] as PolicyName] = {
      limit: Number(m[2]),
      windowSeconds: Number(m[3] || "1") * UNIT_SECONDS[m[4]],
    };
  }
  return out;
}

const DEFAULT_TIERS = "free=2,pro=10";

/**
 * Parses API-key tiers `free=2,pro=10`: each tier multiplies the rate limits and the daily token
 * quota of an anonymous client (`anonymous` is always 1).
 */
export function parseTiers(text: string): Record<string, number> {
  const out: Record<string, number> = { anonymous: 1 };
  for (const part of text.split(",").map((p) => p.trim()).filter(Boolean)) {
    const m = /^([a-z][a-z0-9_-]{0,31})=(\d+(?:\.\d+)?)$/.exec(part);
    if (!m || m[1] === "anonymous" || Number(m[2]) <= 0) {
      throw new Error(`"${part}" is not TIER=MULTIPLIER (e.g. pro=10)`);
    }
    out[m[1]] = Number(m[2]);
  }
  return out;
}

/** Parses durations such as `7d`, `24h`, `90s`, `500ms` (or `0s`) into milliseconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(text.trim());
  if (!m) throw new Error(`"${text}" is not a duration such as 30s, 5m, 24h or 7d`);
  const n = Number(m[1]);
  return m[2] === "ms" ? n : n * UNIT_SECONDS[m[2]] * 1000;
}

/** A text variable turned into a value by `parse`, whose thrown message becomes the zod issue. */
const parsed = <T>(fallback: string, parse: (text: string) => T) =>
  z.string().default(fallback).transform((v, ctx) => {
    try {
      return parse(v);
    } catch (e) {
      ctx.addIssue({ code: "custom", message: (e as Error).message });
      return z.NEVER;
    }
  });
const duration = (fallback: string) => parsed(fallback, parseDuration);
/** A duration that must be above 0 (a timeout, a lease, a lifetime). */
const positiveDuration = (fallback: string) =>
  parsed(fallback, (text) => {
    const ms = parseDuration(text);
    if (ms <= 0) throw new Error(`"${text}" must be longer than 0`);
    return ms;
  });
/** A whole number from `min` to `max`; an empty variable counts as unset (it would coerce to 0). */
const int = (fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER) =>
  z.preprocess(
    (v) => (v === "" ? undefined : v),
    z.coerce.number().int().min(min).max(max).default(fallback),
  );
const optionalText = z.string().trim().min(1).optional().catch(undefined);
const url = (fallback: string) =>
  z.url({ protocol: /^https?$/ }).default(fallback).transform((u) => u.replace(/\/+$/, ""));

const schema = z.object({
  PORT: int(8000, 0, 65535),
  KV_PATH: z.string().min(1).optional(),
  OPENAI_API_KEY: optionalText,
  OPENAI_BASE_URL: z.url({ protocol: /^https?$/ }).optional(),
  LLM_MODEL: z.string().min(1).default("gpt-4o-mini"),
  LLM_TIMEOUT: positiveDuration("120s"),
  LLM_MAX_INFLIGHT: int(16, 1),
  LLM_TOKENS_PER_MINUTE: int(2_000_000, 1),
  LLM_MAX_RETRIES: int(3, 0),
  LLM_FALLBACK: z.enum(["none", "offline"]).default("none"),
  CIRCUIT_THRESHOLD: int(5, 1),
  CIRCUIT_COOLDOWN: positiveDuration("30s"),
  TTS_MODEL: optionalText,
  TTS_VOICES: z.string().default("alloy,onyx"),
  GITHUB_API_URL: url("https://api.github.com"),
  GITHUB_CODELOAD_URL: url("https://codeload.github.com"),
  GITHUB_WEB_HOSTS: z.string().default("github.com,www.github.com"),
  GITHUB_TOKEN: optionalText,
  ADMIN_TOKEN: optionalText,
  TRUST_PROXY: int(0, 0),
  RATE_LIMITS: parsed(DEFAULT_RATE_LIMITS, parseRateLimits),
  REPO_TTL: positiveDuration("7d"),
  JOB_TTL: positiveDuration("24h"),
  UPLOAD_MAX_BYTES: int(50 * 1024 * 1024, 1),
  MAX_FILE_BYTES: int(1024 * 1024, 1),
  MAX_FILES: int(50_000, 1),
  MAX_TOTAL_BYTES: int(300 * 1024 * 1024, 1),
  MAX_DECOMPRESSED_BYTES: int(1024 * 1024 * 1024, 1),
  MAX_TREE_BYTES: int(8 * 1024 * 1024, 1),
  WORKER_CONCURRENCY: int(4, 1),
  JOB_MAX_ATTEMPTS: int(4, 1),
  JOB_TIMEOUT: positiveDuration("10m"),
  JOB_LEASE: positiveDuration("30s"),
  QUEUES: z.enum(["auto", "on", "off"]).default("auto"),
  CORS_ORIGINS: z.string().default(""),
  TIERS: parsed(DEFAULT_TIERS, parseTiers),
  QUOTA_DAILY_TOKENS: int(200_000, 0),
  QUOTA_GLOBAL_DAILY_TOKENS: int(10_000_000, 0),
  MAX_STREAMS_PER_CLIENT: int(32, 0),
  MAX_STREAMS_PER_PROCESS: int(20_000, 0),
  MAX_INGESTS_PER_CLIENT: int(3, 0),
  SHED_QUEUE_DEPTH: int(200, 0),
  SHED_QUEUE_AGE: duration("2m"),
  SHED_LOOP_DELAY: duration("300ms"),
  SHED_ON_CIRCUIT: z.enum(["on", "off"]).default("on"),
  LOG_LEVEL: z.enum(["debug", "info", "warn", "error", "silent"]).default("info"),
});

export type Config = ReturnType<typeof configFromEnv>;

/** Reads and validates configuration once; throws an Error naming each bad variable. */
export function configFromEnv(env: Record<string, string | undefined>) {
  const result = schema.safeParse(env);
  if (!result.success) {
    const lines = result.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
    throw new Error(`Invalid configuration:\n  ${lines.join("\n  ")}`);
  }
  const c = result.data;
  const onDeploy = Boolean(env.DENO_DEPLOYMENT_ID);
  return {
    port: c.PORT,
    onDeploy,
    kvPath: c.KV_PATH ?? (onDeploy ? undefined : "./data/repolm.kv"),
    llm: {
      apiKey: c.OPENAI_API_KEY,
      baseUrl: c.OPENAI_BASE_URL,
      model: c.OPENAI_API_KEY ? c.LLM_MODEL : "offline",
      timeoutMs: c.LLM_TIMEOUT,
      ttsModel: c.TTS_MODEL,
      ttsVoices: c.TTS_VOICES.split(",").map((v) => v.trim()).filter(Boolean),
      maxInFlight: c.LLM_MAX_INFLIGHT,
      tokensPerMinute: c.LLM_TOKENS_PER_MINUTE,
      maxRetries: c.LLM_MAX_RETRIES,
      fallbackToOffline: c.LLM_FALLBACK === "offline",
      circuitThreshold: c.CIRCUIT_THRESHOLD,
      circuitCooldownMs: c.CIRCUIT_COOLDOWN,
    },
    github: {
      apiUrl: c.GITHUB_API_URL,
      codeloadUrl: c.GITHUB_CODELOAD_URL,
      webHosts: c.GITHUB_WEB_HOSTS.split(",").map((h) => h.trim().toLowerCase()).filter(Boolean),
      token: c.GITHUB_TOKEN,
    },
    adminToken: c.ADMIN_TOKEN,
    trustProxy: c.TRUST_PROXY,
    rateLimits: c.RATE_LIMITS,
    repoTtlMs: c.REPO_TTL,
    jobTtlMs: c.JOB_TTL,
    limits: {
      uploadBytes: c.UPLOAD_MAX_BYTES,
      fileBytes: c.MAX_FILE_BYTES,
      files: c.MAX_FILES,
      totalBytes: c.MAX_TOTAL_BYTES,
      decompressedBytes: c.MAX_DECOMPRESSED_BYTES,
      treeBytes: c.MAX_TREE_BYTES,
    },
    jobs: {
      concurrency: c.WORKER_CONCURRENCY,
      maxAttempts: c.JOB_MAX_ATTEMPTS,
      timeoutMs: c.JOB_TIMEOUT,
      leaseMs: c.JOB_LEASE,
      // Deno Deploy and KV Connect (denokv) have no queues
      useQueues: c.QUEUES === "on" || (c.QUEUES === "auto" && !onDeploy && !c.KV_PATH?.includes("://")),
    },
    corsOrigins: c.CORS_ORIGINS.split(",").map((o) => o.trim()).filter(Boolean),
    /** Traffic control (lib/rate_limit.ts, lib/quota.ts, lib/caps.ts, lib/shedding.ts); 0 = no limit. */
    traffic: {
      tiers: c.TIERS,
      dailyTokens: c.QUOTA_DAILY_TOKENS,
      globalDailyTokens: c.QUOTA_GLOBAL_DAILY_TOKENS,
      streamsPerClient: c.MAX_STREAMS_PER_CLIENT,
      streamsPerProcess: c.MAX_STREAMS_PER_PROCESS,
      ingestsPerClient: c.MAX_INGESTS_PER_CLIENT,
      shedQueueDepth: c.SHED_QUEUE_DEPTH,
      shedQueueAgeMs: c.SHED_QUEUE_AGE,
      shedLoopDelayMs: c.SHED_LOOP_DELAY,
      shedOnCircuit: c.SHED_ON_CIRCUIT === "on",
    },
    logLevel: c.LOG_LEVEL,
  };
}
