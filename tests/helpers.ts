/** Test harness: an app on an in-memory KV with real workers, small waiting helpers, and a repo ingested from a tar. */
import type { Clock } from "../lib/clock.ts";
import { type Config, configFromEnv } from "../lib/config.ts";
import { ingestArchive, type IngestLimits } from "../lib/ingest.ts";
import { KvBatch } from "../lib/kv_util.ts";
import { createLogger } from "../lib/log.ts";
import type { LlmProvider } from "../lib/llm/types.ts";
import type { AppDeps } from "../lib/deps.ts";
import type { RepoRecord } from "../lib/repos.ts";
import { createServices } from "../queues/mod.ts";
import type { Worker } from "../queues/worker.ts";
import { createApp } from "../routes/mod.ts";
import { buildTar, type FixtureEntry } from "./fakes/archives.ts";

/** A clock tests can move forward. */
export class FakeClock implements Clock {
  constructor(public t = Date.UTC(2026, 10, 22)) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

export interface TestApp {
  deps: AppDeps;
  worker: Worker;
  /** `remoteAddr` is the connection's peer address the app sees (127.0.0.1 unless given). */
  fetch(path: string, init?: RequestInit, remoteAddr?: string): Promise<Response>;
  json<T = Record<string, unknown>>(
    path: string,
    init?: RequestInit,
    remoteAddr?: string,
  ): Promise<{ status: number; body: T; res: Response }>;
  close(): Promise<void>;
}

export interface TestAppOptions {
  env?: Record<string, string>;
  clock?: Clock;
  startWorker?: boolean;
  /** The offline provider (the real one unless a test swaps it). */
  offline?: LlmProvider;
}

/** Builds the app exactly as main.ts does, on `:memory:` KV, with a quiet logger. */
export async function startTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const config: Config = configFromEnv({
    LOG_LEVEL: "silent",
    QUEUES: "off",
    JOB_LEASE: "2s",
    // traffic limits out of the way unless a test sets its own (tests/routes/traffic_test.ts)
    RATE_LIMITS: "read=1000000/1m,ingest=1000000/1m,generate=1000000/1m,chat=1000000/1m",
    MAX_STREAMS_PER_CLIENT: "0",
    MAX_INGESTS_PER_CLIENT: "0",
    SHED_ON_CIRCUIT: "off",
    ...options.env,
  });
  const kv = await Deno.openKv(":memory:");
  const clock = options.clock ?? { now: () => Date.now() };
  const log = createLogger(config.logLevel);
  const { deps, worker } = createServices(config, kv, clock, log, {
    version: "test",
    offline: options.offline,
    worker: { useQueues: false, pollMs: 250, graceMs: 2000 },
    writer: { maxBatchChars: 256, maxDelayMs: 50 },
    retryBaseMs: 20,
  });
  if (options.startWorker !== false) worker.start();
  const app = createApp(deps);
  const fetchApp = (path: string, init?: RequestInit, remoteAddr = "127.0.0.1") =>
    Promise.resolve(app.fetch(new Request(`http://local${path}`, init), {
      remoteAddr: { hostname: remoteAddr, port: 40000, transport: "tcp" },
    }));
  return {
    deps,
    worker,
    fetch: fetchApp,
    async json(path, init, remoteAddr) {
      const res = await fetchApp(path, init, remoteAddr);
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null, res };
    },
    async close() {
      await worker.stop();
      kv.close();
    },
  };
}

/** A JSON POST request init. */
export function postJson(body: unknown): RequestInit {
  return { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
}

/** Waits until `check` returns a truthy value, polling every 25 ms, failing after `timeoutMs`. */
export async function waitFor<T>(
  check: () => Promise<T> | T,
  timeoutMs = 10_000,
  what = "condition",
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Waits for a job to end and returns it as the API shows it. */
export async function waitForJob(app: TestApp, jobId: string, timeoutMs = 20_000) {
  return await waitFor(
    async () => {
      const { body } = await app.json<{ status: string }>(`/api/jobs/${jobId}`);
      return ["succeeded", "failed", "canceled"].includes(body.status) ? body : null;
    },
    timeoutMs,
    `job ${jobId}`,
  );
}

/** Reads an SSE body into events until it ends. */
export async function readSse(res: Response): Promise<{ id?: string; event: string; data: unknown }[]> {
  const text = await res.text();
  return parseSse(text);
}

/** Parses SSE text into events (comments skipped). */
export function parseSse(text: string): { id?: string; event: string; data: unknown }[] {
  const out = [];
  for (const block of text.split("\n\n")) {
    const lines = block.split("\n").filter((l) => l && !l.startsWith(":"));
    if (!lines.length) continue;
    const field = (name: string) => lines.find((l) => l.startsWith(`${name}: `))?.slice(name.length + 2);
    out.push({
      id: field("id"),
      event: field("event") ?? "message",
      data: JSON.parse(field("data") ?? "null"),
    });
  }
  return out;
}

/**
 * A ready repo ingested from a tar of `entries` into an in-memory KV (the caller closes it), as an
 * upload is; `limits` replace the defaults given. A failed ingest closes the KV and throws.
 */
export async function ingestTar(entries: FixtureEntry[], limits: Partial<IngestLimits> = {}) {
  const kv = await Deno.openKv(":memory:");
  const tar = await buildTar(entries);
  const repo = { id: `repo-${crypto.randomUUID()}`, gen: "gen" };
  const result = await ingestArchive({
    kv,
    repoId: repo.id,
    gen: repo.gen,
    archive: ReadableStream.from([tar]),
    stripSegments: 0,
    filters: {},
    limits: {
      fileBytes: 2 << 20,
      files: 1000,
      totalBytes: 1 << 26,
      decompressedBytes: 1 << 27,
      treeBytes: 1 << 24,
      ...limits,
    },
    batch: new KvBatch(kv),
    signal: new AbortController().signal,
  }).catch((e) => {
    kv.close();
    throw e;
  });
  const record: RepoRecord = {
    ...repo,
    status: "ready",
    source: { type: "upload", filename: "test.tar" },
    filters: {},
    stats: result.stats,
    indexShards: result.indexShards,
    createdAt: 0,
    expiresAt: 0,
  };
  return { kv, repo: record };
}
