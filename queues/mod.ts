/**
 * Builds the services main.ts and the test harness share: the job store, the model deps, the job
 * handlers and the worker that runs them — one place, so tests run the app exactly as wired.
 */
import type { Clock } from "../lib/clock.ts";
import type { Config } from "../lib/config.ts";
import type { AppDeps } from "../lib/deps.ts";
import { JobStore } from "../lib/jobs.ts";
import type { Logger } from "../lib/log.ts";
import { jobMetricsEvents } from "../lib/metrics.ts";
import { createModels } from "../lib/llm/mod.ts";
import { OfflineProvider } from "../lib/llm/offline.ts";
import type { LlmProvider } from "../lib/llm/types.ts";
import type { WriterOptions } from "../lib/artifact_writer.ts";
import { generateHandler } from "./generate.ts";
import { ingestHandler } from "./ingest.ts";
import { Worker, type WorkerOptions } from "./worker.ts";
import { Drain } from "../lib/drain.ts";

export interface ServiceOptions {
  version: string;
  /** The provider used without a key and as the fallback (the real offline one by default). */
  offline?: LlmProvider;
  /** Tuning that tests turn down to keep them fast. */
  worker?: Partial<WorkerOptions>;
  writer?: WriterOptions;
  retryBaseMs?: number;
}

/** The app's dependencies and its job worker (not started). */
export function createServices(
  config: Config,
  kv: Deno.Kv,
  clock: Clock,
  log: Logger,
  options: ServiceOptions,
): { deps: AppDeps; worker: Worker } {
  const jobs = new JobStore(kv, clock, {
    maxAttempts: config.jobs.maxAttempts,
    leaseMs: config.jobs.leaseMs,
    ttlMs: config.jobTtlMs,
    useQueues: config.jobs.useQueues,
    concurrency: config.jobs.concurrency,
  });
  const models = createModels(config, kv, clock, options.offline ?? new OfflineProvider());
  if (options.retryBaseMs !== undefined) models.retry.baseMs = options.retryBaseMs;
  const deps: AppDeps = {
    kv,
    config,
    clock,
    log,
    jobs,
    models,
    version: options.version,
    drain: new Drain(),
  };
  const handlers = {
    ingest: ingestHandler({
      kv,
      clock,
      github: config.github,
      limits: config.limits,
      repoTtlMs: config.repoTtlMs,
      failedRepoTtlMs: config.jobTtlMs,
    }),
    generate: generateHandler({ kv, clock, models, log, writer: options.writer }),
  };
  const worker = new Worker(
    jobs,
    handlers,
    {
      concurrency: config.jobs.concurrency,
      timeoutMs: config.jobs.timeoutMs,
      leaseMs: config.jobs.leaseMs,
      useQueues: config.jobs.useQueues,
      ...options.worker,
    },
    log,
    jobMetricsEvents(),
  );
  return { deps, worker };
}
