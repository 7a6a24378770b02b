/**
 * Runs jobs. Two ways in, both calling the same `tryRun`: Deno Queues messages (`listenQueue`,
 * once per process) and a claim loop that takes due jobs and jobs whose lease lapsed (for
 * platforms without Queues and to take over a dead process's work). A bounded number of jobs run
 * at once; each has a lease renewed while it works, a timeout, and retries with full jitter.
 */
import { AppError, DeferJobError, PermanentJobError } from "../lib/errors.ts";
import {
  backoffMs,
  isJobMessage,
  type JobLease,
  type JobRecord,
  type JobStore,
  type JobType,
} from "../lib/jobs.ts";
import { keys } from "../lib/keys.ts";
import type { Logger } from "../lib/log.ts";
import { newId } from "../lib/ids.ts";

/** What a handler gets besides the job: cancellation, progress and the lease check for its writes. */
export interface JobContext {
  signal: AbortSignal;
  /** Reports progress (throttled); throws when the lease was lost. */
  progress(phase: string, done: number, total: number): Promise<void>;
  /** The check every result write must carry, so only the lease holder writes. */
  leaseCheck(): Deno.AtomicCheck;
  /** The error to throw when a lease-checked write was refused. */
  leaseLost(): Error;
}

export interface JobHandler {
  /** Does the work; returns writes to commit atomically with the job's success. Must be idempotent. */
  run(job: JobRecord, ctx: JobContext): Promise<((atomic: Deno.AtomicOperation) => void) | void>;
  /** Writes to commit atomically with the job's final failure (e.g. mark the repo failed). */
  onFailed?(
    job: JobRecord,
    error: { code: string; message: string },
  ): Promise<((atomic: Deno.AtomicOperation) => void) | void>;
  /** Cleanup once the failure is committed and nobody writes for the job any more. */
  afterFailed?(job: JobRecord): Promise<void>;
  /** Per-type timeout; the worker default applies otherwise. */
  timeoutMs?: number;
}

export interface WorkerOptions {
  concurrency: number;
  timeoutMs: number;
  leaseMs: number;
  useQueues: boolean;
  pollMs?: number;
  /** How long shutdown waits for running jobs before releasing them back to the queue. */
  graceMs?: number;
  /** Base of the exponential retry backoff (full jitter). */
  retryBaseMs?: number;
}

export interface WorkerEvents {
  onJobEnd?(type: JobType, outcome: "succeeded" | "failed" | "retried", ms: number): void;
}

class LeaseLostError extends Error {
  constructor() {
    super("the job's lease was taken by another worker");
  }
}

export class Worker {
  readonly id = newId();
  #running = new Map<string, { controller: AbortController; done: Promise<void> }>();
  #stopping = false;
  #wake: () => void = () => {};
  #loop: Promise<void> | null = null;
  #watchAbort = new AbortController();

  constructor(
    private readonly store: JobStore,
    private readonly handlers: Partial<Record<JobType, JobHandler>>,
    private readonly options: WorkerOptions,
    private readonly log: Logger,
    private readonly events: WorkerEvents = {},
  ) {}

  /** Number of jobs this process is running now. */
  get active(): number {
    return this.#running.size;
  }

  /** Starts the queue listener (when enabled) and the claim loop. */
  start(): void {
    if (this.options.useQueues) {
      this.store.kv.listenQueue(async (message) => {
        if (isJobMessage(message) && !this.#stopping) await this.tryRun(message.jobId);
      });
    }
    this.#loop = this.#claimLoop();
    this.#watchSignal();
  }

  /** Wakes the claim loop whenever any process in this isolate dispatches a job. */
  async #watchSignal(): Promise<void> {
    try {
      const stream = this.store.kv.watch([keys.jobSignal()]);
      const reader = stream.getReader();
      this.#watchAbort.signal.addEventListener("abort", () => reader.cancel().catch(() => {}), {
        once: true,
      });
      while (!this.#stopping) {
        const { done } = await reader.read();
        if (done) return;
        this.#wake();
      }
    } catch {
      // the KV closed under us: the poll keeps the loop going until stop()
    }
  }

  async #claimLoop(): Promise<void> {
    const pollMs = this.options.pollMs ?? 1000;
    let lastLapsedScan = 0;
    while (!this.#stopping) {
      const now = Date.now();
      const scanLapsed = now - lastLapsedScan > this.options.leaseMs / 2;
      if (scanLapsed) lastLapsedScan = now;
      await this.#startDue(scanLapsed);
      if (this.#stopping) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, pollMs);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /**
   * One pass of the claim loop: starts due jobs (and, with `scanLapsed`, jobs whose worker died)
   * up to the free slots. Resolves when the jobs it started have ended — what a `Deno.cron`
   * tick on a platform without Queues waits for.
   */
  async claimOnce(scanLapsed = true): Promise<void> {
    await Promise.all(await this.#startDue(scanLapsed));
  }

  /** Starts due (and lapsed) jobs without waiting for them; returns their completions. */
  async #startDue(scanLapsed: boolean): Promise<Promise<void>[]> {
    const started: Promise<void>[] = [];
    try {
      const free = this.options.concurrency - this.#running.size;
      if (free <= 0) return started;
      for (const id of await this.store.dueJobIds(free * 2)) {
        if (this.#running.size >= this.options.concurrency || this.#stopping) break;
        started.push(this.tryRun(id));
      }
      if (scanLapsed) { for (const id of await this.store.lapsedJobIds(free)) started.push(this.tryRun(id)); }
    } catch (e) {
      if (!this.#stopping) this.log.error("claim loop error", { error: e });
    }
    return started;
  }

  /** Claims and runs a job if this process has a free slot and the job is claimable. */
  async tryRun(jobId: string): Promise<void> {
    if (this.#stopping || this.#running.has(jobId) || this.#running.size >= this.options.concurrency) return;
    const controller = new AbortController();
    let finish = () => {};
    const done = new Promise<void>((r) => finish = r);
    this.#running.set(jobId, { controller, done });
    try {
      const claimed = await this.store.claim(jobId, this.id);
      if (claimed) await this.#execute(claimed.job, claimed.lease, controller);
    } catch (e) {
      this.log.error("job runner error", { jobId, error: e });
    } finally {
      this.#running.delete(jobId);
      finish();
      this.#wake();
    }
  }

  async #execute(job: JobRecord, lease: Deno.KvEntry<JobLease>, shutdown: AbortController): Promise<void> {
    const handler = this.handlers[job.type];
    const started = Date.now();
    if (!handler) {
      await this.store.finish(job, lease, "failed", {
        code: "internal",
        message: `No handler for ${job.type}.`,
      });
      return;
    }
    if (job.attempts > job.maxAttempts) {
      const error = {
        code: "worker_lost",
        message: "The job was interrupted too many times (its worker stopped). Ask for it again.",
      };
      await this.#fail(job, lease, handler, error, 0);
      return;
    }
    const leaseLost = new AbortController();
    const timeoutMs = handler.timeoutMs ?? this.options.timeoutMs;
    const signal = AbortSignal.any([leaseLost.signal, shutdown.signal, AbortSignal.timeout(timeoutMs)]);
    const renewTimer = setInterval(async () => {
      try {
        if (!(await this.store.renew(lease))) leaseLost.abort(new LeaseLostError());
      } catch (e) {
        this.log.warn("lease renewal failed", { jobId: job.id, error: e });
      }
    }, Math.max(250, this.options.leaseMs / 3));
    let lastProgress = 0;
    const ctx: JobContext = {
      signal,
      progress: async (phase, done, total) => {
        const now = Date.now();
        if (phase === job.progress.phase && now - lastProgress < 250 && (total === 0 || done < total)) return;
        lastProgress = now;
        if (!(await this.store.progress(job, lease, { phase, done, total }))) throw new LeaseLostError();
      },
      leaseCheck: () => ({ key: lease.key, versionstamp: lease.versionstamp }),
      leaseLost: () => new LeaseLostError(),
    };
    this.log.info("job started", { jobId: job.id, type: job.type, attempt: job.attempts });
    try {
      const onSuccess = await handler.run(job, ctx);
      signal.throwIfAborted();
      if (await this.store.finish(job, lease, "succeeded", undefined, onSuccess ?? undefined)) {
        const ms = Date.now() - started;
        await this.store.recordDuration(job.type, ms);
        this.events.onJobEnd?.(job.type, "succeeded", ms);
        this.log.info("job succeeded", { jobId: job.id, type: job.type, ms });
      }
    } catch (e) {
      const reason = signal.aborted ? signal.reason : e;
      await this.#onError(job, lease, handler, reason, shutdown.signal.aborted, started);
    } finally {
      clearInterval(renewTimer);
    }
  }

  async #onError(
    job: JobRecord,
    lease: Deno.KvEntry<JobLease>,
    handler: JobHandler,
    e: unknown,
    shuttingDown: boolean,
    started: number,
  ): Promise<void> {
    if (e instanceof LeaseLostError) {
      this.log.warn("job lease lost; another worker has it", { jobId: job.id });
      return;
    }
    if (e instanceof DeferJobError) {
      await this.store.requeue(job, lease, e.delayMs, undefined, false);
      this.log.info("job deferred", { jobId: job.id, reason: e.message, delayMs: e.delayMs });
      return;
    }
    if (shuttingDown) {
      await this.store.requeue(job, lease, 0, undefined, false);
      this.log.info("job released at shutdown", { jobId: job.id });
      return;
    }
    const timedOut = e instanceof DOMException && e.name === "TimeoutError";
    const error = timedOut
      ? { code: "job_timeout", message: "The job took too long and was stopped." }
      : e instanceof AppError
      ? { code: e.code, message: e.message }
      : { code: "internal", message: "The job failed unexpectedly." };
    const ms = Date.now() - started;
    const permanent = e instanceof PermanentJobError;
    if (!permanent && job.attempts < job.maxAttempts) {
      const delay = backoffMs(job.attempts, this.options.retryBaseMs);
      this.log.warn("job attempt failed; retrying", {
        jobId: job.id,
        code: error.code,
        delayMs: delay,
        error: e,
      });
      await this.store.requeue(job, lease, delay, error);
      this.events.onJobEnd?.(job.type, "retried", ms);
      return;
    }
    if (!permanent && !(e instanceof AppError)) this.log.error("job failed", { jobId: job.id, error: e });
    await this.#fail(job, lease, handler, error, ms);
  }

  async #fail(
    job: JobRecord,
    lease: Deno.KvEntry<JobLease>,
    handler: JobHandler,
    error: { code: string; message: string },
    ms: number,
  ): Promise<void> {
    const extend = await handler.onFailed?.(job, error);
    if (!(await this.store.finish(job, lease, "failed", error, extend ?? undefined))) return;
    this.events.onJobEnd?.(job.type, "failed", ms);
    this.log.info("job failed", { jobId: job.id, type: job.type, code: error.code });
    await handler.afterFailed?.(job);
  }

  /**
   * Stops taking work, lets running jobs finish for up to `graceMs`, then aborts the rest, which
   * puts them back in the queue for another process (or the next start) to run.
   */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#wake();
    this.#watchAbort.abort();
    await this.#loop;
    const all = () => Promise.all([...this.#running.values()].map((r) => r.done));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const graceOver = new Promise<"timeout">((r) =>
      timer = setTimeout(() => r("timeout"), this.options.graceMs ?? 10_000)
    );
    const outcome = await Promise.race([all(), graceOver]);
    clearTimeout(timer);
    if (outcome === "timeout") {
      for (const r of this.#running.values()) r.controller.abort(new Error("shutdown"));
      await all();
    }
  }
}
