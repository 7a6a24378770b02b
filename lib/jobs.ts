/**
 * Durable jobs in Deno KV. A job record, its idempotency guard (`job_active`, the equivalent of a
 * unique index on active jobs) and its dispatch (`job_ready` index, `kv.enqueue`, `job_signal`)
 * are created in one atomic commit. Workers claim jobs with a lease; only the lease holder may
 * write results (every write checks the lease key). See queues/worker.ts for the runner.
 */
import type { Clock } from "./clock.ts";
import { newId } from "./ids.ts";
import { keys } from "./keys.ts";
import { commitWithRetry } from "./kv_util.ts";

export type JobType = "ingest" | "generate";
export type JobStatus = "queued" | "running" | "succeeded" | "failed" | "canceled";

export interface JobProgress {
  phase: string;
  done: number;
  total: number;
}

export interface JobSubject {
  repoId?: string;
  artifactId?: string;
}

/** The stored job: the public fields of API.md plus what the runner needs. */
export interface JobRecord {
  id: string;
  type: JobType;
  status: JobStatus;
  progress: JobProgress;
  attempts: number;
  maxAttempts: number;
  error?: { code: string; message: string };
  subject: JobSubject;
  payload: Record<string, unknown>;
  dedupeKey?: string;
  runAt: number;
  createdAt: number;
  updatedAt: number;
  expiresAt: number;
}

/** The job as API.md shows it. */
export interface PublicJob {
  id: string;
  type: JobType;
  status: JobStatus;
  progress: JobProgress;
  attempts: number;
  error?: { code: string; message: string };
  queuePosition?: number;
  etaSeconds?: number;
  subject: JobSubject;
  createdAt: string;
  updatedAt: string;
  expiresAt: string;
}

export interface JobLease {
  owner: string;
  token: string;
}

/** Liveness of a running job: renewed by its worker; a claimer may take the job once `until` passed. */
export interface JobHeartbeat {
  owner: string;
  until: number;
}

export interface NewJob {
  type: JobType;
  subject: JobSubject;
  payload: Record<string, unknown>;
  /** Jobs with the same key while one is active are the same job. */
  dedupeKey?: string;
  /** Progress shown before a worker picks the job up. */
  progress?: JobProgress;
}

export interface JobSettings {
  maxAttempts: number;
  leaseMs: number;
  ttlMs: number;
  useQueues: boolean;
  concurrency: number;
}

/** Message sent through Deno Queues to wake a worker for a job. */
export interface JobMessage {
  kind: "job";
  jobId: string;
}

export function isJobMessage(m: unknown): m is JobMessage {
  return typeof m === "object" && m !== null && (m as JobMessage).kind === "job" &&
    typeof (m as JobMessage).jobId === "string";
}

const ENDED: JobStatus[] = ["succeeded", "failed", "canceled"];

/** True once a job can no longer change. */
export function isEnded(status: JobStatus): boolean {
  return ENDED.includes(status);
}

/** Full-jitter exponential backoff: a random delay in [0, min(cap, base · 2^attempt)). */
export function backoffMs(attempt: number, baseMs = 1000, capMs = 60_000): number {
  return Math.floor(Math.random() * Math.min(capMs, baseMs * 2 ** attempt));
}

/** Store of job records and their indexes. */
export class JobStore {
  constructor(
    readonly kv: Deno.Kv,
    readonly clock: Clock,
    readonly settings: JobSettings,
  ) {}

  /**
   * Creates a job, or returns the active job with the same dedupe key. `extend` adds the caller's
   * own checks and mutations (e.g. the repo record) to the same atomic commit. Returns null when
   * the caller's checks failed (the caller re-reads its state and tries again).
   */
  async create(
    spec: NewJob,
    extend?: (atomic: Deno.AtomicOperation, job: JobRecord) => void,
  ): Promise<{ job: JobRecord; created: boolean } | null> {
    if (spec.dedupeKey) {
      const existing = await this.activeJob(spec.dedupeKey);
      if (existing) return { job: existing, created: false };
    }
    const job = this.#newRecord(spec);
    const result = await commitWithRetry(() => {
      const atomic = this.kv.atomic();
      this.#guard(atomic, job);
      atomic.set(keys.job(job.id), job);
      this.#dispatch(atomic, job, 0);
      extend?.(atomic, job);
      return atomic.commit();
    });
    if (result.ok) return { job, created: true };
    const existing = spec.dedupeKey ? await this.activeJob(spec.dedupeKey) : null;
    return existing ? { job: existing, created: false } : null;
  }

  #newRecord(spec: NewJob): JobRecord {
    const now = this.clock.now();
    return {
      id: newId(now),
      type: spec.type,
      status: "queued",
      progress: spec.progress ?? { phase: "queued", done: 0, total: 0 },
      attempts: 0,
      maxAttempts: this.settings.maxAttempts,
      subject: spec.subject,
      payload: spec.payload,
      dedupeKey: spec.dedupeKey,
      runAt: now,
      createdAt: now,
      updatedAt: now,
      expiresAt: now + this.settings.ttlMs,
    };
  }

  /** The unique-active-job guard: at most one active job per dedupe key. */
  #guard(atomic: Deno.AtomicOperation, job: JobRecord): void {
    if (!job.dedupeKey) return;
    atomic.check({ key: keys.jobActive(job.dedupeKey), versionstamp: null });
    atomic.set(keys.jobActive(job.dedupeKey), job.id);
  }

  /** The active job for a dedupe key, if any. */
  async activeJob(dedupeKey: string): Promise<JobRecord | null> {
    const active = await this.kv.get<string>(keys.jobActive(dedupeKey));
    if (!active.value) return null;
    const job = await this.get(active.value);
    return job && !isEnded(job.status) ? job : null;
  }

  /** Adds the ready index entry, the queue message and the wake-up signal for a job. */
  #dispatch(atomic: Deno.AtomicOperation, job: JobRecord, delayMs: number): void {
    atomic.set(keys.jobReady(job.runAt, job.id), job.type);
    atomic.set(keys.jobSignal(), job.runAt);
    if (this.settings.useQueues) {
      atomic.enqueue({ kind: "job", jobId: job.id } satisfies JobMessage, { delay: delayMs });
    }
  }

  /** The job record, or null when missing or past its expiry. */
  async get(id: string): Promise<JobRecord | null> {
    const entry = await this.kv.get<JobRecord>(keys.job(id));
    return entry.value && entry.value.expiresAt > this.clock.now() ? entry.value : null;
  }

  /** The job as API.md shows it, with queue position and ETA while queued. */
  async toPublic(job: JobRecord): Promise<PublicJob> {
    const out: PublicJob = {
      id: job.id,
      type: job.type,
      status: job.status,
      progress: job.progress,
      attempts: job.attempts,
      subject: job.subject,
      createdAt: new Date(job.createdAt).toISOString(),
      updatedAt: new Date(job.updatedAt).toISOString(),
      expiresAt: new Date(job.expiresAt).toISOString(),
    };
    if (job.error) out.error = job.error;
    if (job.status === "queued") {
      out.queuePosition = await this.queuePosition(job);
      const avgMs = (await this.kv.get<{ avgMs: number }>(keys.jobStats(job.type))).value?.avgMs ?? 10_000;
      const waitForStart = Math.max(0, job.runAt - this.clock.now());
      const rounds = Math.ceil(out.queuePosition / this.settings.concurrency);
      out.etaSeconds = Math.ceil((waitForStart + rounds * avgMs) / 1000);
    }
    return out;
  }

  /** 1 + the number of ready jobs ahead of this one (capped at 10,000). */
  async queuePosition(job: JobRecord): Promise<number> {
    let ahead = 0;
    const iter = this.kv.list({ prefix: keys.jobReadyPrefix(), end: keys.jobReady(job.runAt, job.id) }, {
      limit: 10_000,
    });
    for await (const _ of iter) ahead++;
    return ahead + 1;
  }

  /** Number of queued jobs and the age of the oldest ready one, for health and shedding. */
  async queueStats(limit = 10_000): Promise<{ depth: number; oldestAgeSeconds: number }> {
    let depth = 0;
    let oldest = Infinity;
    for await (const e of this.kv.list({ prefix: keys.jobReadyPrefix() }, { limit })) {
      depth++;
      oldest = Math.min(oldest, e.key[1] as number);
    }
    const age = depth ? Math.max(0, (this.clock.now() - oldest) / 1000) : 0;
    return { depth, oldestAgeSeconds: Math.round(age) };
  }

  /** Records a finished run's duration in a moving average, for ETAs. */
  async recordDuration(type: JobType, ms: number): Promise<void> {
    const entry = await this.kv.get<{ avgMs: number; count: number }>(keys.jobStats(type));
    const prev = entry.value;
    const avgMs = prev ? prev.avgMs * 0.8 + ms * 0.2 : ms;
    await this.kv.set(keys.jobStats(type), { avgMs, count: (prev?.count ?? 0) + 1 });
  }

  /**
   * Claims a job for `owner` if it is ready (queued and due) or its running lease has lapsed.
   * Returns the claimed record and the lease entry, or null when someone else holds it.
   */
  async claim(id: string, owner: string): Promise<{ job: JobRecord; lease: Deno.KvEntry<JobLease> } | null> {
    const [jobEntry, leaseEntry, beatEntry] = await this.kv.getMany<[JobRecord, JobLease, JobHeartbeat]>([
      keys.job(id),
      keys.jobLease(id),
      keys.jobRunning(id),
    ]);
    const job = jobEntry.value;
    const now = this.clock.now();
    if (!job) return null;
    const ready = job.status === "queued" && job.runAt <= now;
    const lapsed = job.status === "running" && (!beatEntry.value || beatEntry.value.until < now);
    if (!ready && !lapsed) return null;
    const claimed: JobRecord = {
      ...job,
      status: "running",
      attempts: job.attempts + 1,
      updatedAt: now,
    };
    const lease: JobLease = { owner, token: newId(now) };
    const result = await commitWithRetry(() =>
      this.kv.atomic()
        .check(jobEntry, leaseEntry, beatEntry)
        .set(keys.job(id), claimed)
        .set(keys.jobLease(id), lease)
        .set(keys.jobRunning(id), { owner, until: now + this.settings.leaseMs } satisfies JobHeartbeat)
        .delete(keys.jobReady(job.runAt, id))
        .commit()
    );
    if (!result.ok) return null;
    return {
      job: claimed,
      lease: { key: keys.jobLease(id), value: lease, versionstamp: result.versionstamp },
    };
  }

  /** Extends a running job's heartbeat; false when the lease was lost to another worker. */
  async renew(lease: Deno.KvEntry<JobLease>): Promise<boolean> {
    const id = lease.key[1] as string;
    const result = await commitWithRetry(() =>
      this.kv.atomic()
        .check(lease)
        .set(
          keys.jobRunning(id),
          {
            owner: lease.value.owner,
            until: this.clock.now() + this.settings.leaseMs,
          } satisfies JobHeartbeat,
        )
        .commit()
    );
    return result.ok;
  }

  /** Writes progress; false when the lease was lost. */
  async progress(job: JobRecord, lease: Deno.KvEntry<JobLease>, progress: JobProgress): Promise<boolean> {
    job.progress = progress;
    job.updatedAt = this.clock.now();
    const result = await commitWithRetry(() =>
      this.kv.atomic().check(lease).set(keys.job(job.id), job).commit()
    );
    return result.ok;
  }

  /** Ends a job (succeeded, failed or canceled) and frees its dedupe key; `extend` adds the caller's writes. */
  async finish(
    job: JobRecord,
    lease: Deno.KvEntry<JobLease> | null,
    status: "succeeded" | "failed" | "canceled",
    error?: { code: string; message: string },
    extend?: (atomic: Deno.AtomicOperation) => void,
  ): Promise<boolean> {
    const now = this.clock.now();
    const ended: JobRecord = {
      ...job,
      status,
      error,
      progress: status === "succeeded" ? { ...job.progress, phase: "done" } : job.progress,
      updatedAt: now,
      expiresAt: now + this.settings.ttlMs,
    };
    const result = await commitWithRetry(() => {
      const atomic = this.kv.atomic();
      if (lease) atomic.check(lease);
      atomic.set(keys.job(job.id), ended, { expireIn: this.settings.ttlMs });
      if (job.dedupeKey) atomic.delete(keys.jobActive(job.dedupeKey));
      atomic.delete(keys.jobRunning(job.id)).delete(keys.jobLease(job.id)).delete(
        keys.jobReady(job.runAt, job.id),
      );
      atomic.set(keys.jobSignal(), now);
      extend?.(atomic);
      return atomic.commit();
    });
    if (result.ok) Object.assign(job, ended);
    return result.ok;
  }

  /**
   * Puts a running job back in the queue to run after `delayMs`. `countAttempt` false gives the
   * attempt back (used when a process shuts down mid-job, which is not the job's fault).
   */
  async requeue(
    job: JobRecord,
    lease: Deno.KvEntry<JobLease>,
    delayMs: number,
    lastError?: { code: string; message: string },
    countAttempt = true,
  ): Promise<boolean> {
    const now = this.clock.now();
    const queued: JobRecord = {
      ...job,
      status: "queued",
      runAt: now + delayMs,
      attempts: countAttempt ? job.attempts : job.attempts - 1,
      error: lastError,
      progress: { phase: "queued", done: 0, total: 0 },
      updatedAt: now,
    };
    const result = await commitWithRetry(() => {
      const atomic = this.kv.atomic().check(lease).set(keys.job(job.id), queued);
      atomic.delete(keys.jobRunning(job.id)).delete(keys.jobLease(job.id));
      this.#dispatch(atomic, queued, delayMs);
      return atomic.commit();
    });
    if (result.ok) Object.assign(job, queued);
    return result.ok;
  }

  /** Ids of jobs that are due to run (oldest first). */
  async dueJobIds(limit: number): Promise<string[]> {
    const ids: string[] = [];
    const end = keys.jobReady(this.clock.now() + 1, "");
    for await (const e of this.kv.list({ prefix: keys.jobReadyPrefix(), end }, { limit })) {
      ids.push(e.key[2] as string);
    }
    return ids;
  }

  /** Ids of running jobs whose heartbeat lapsed (their worker died or stalled). */
  async lapsedJobIds(limit: number): Promise<string[]> {
    const ids: string[] = [];
    const now = this.clock.now();
    for await (const e of this.kv.list<JobHeartbeat>({ prefix: keys.jobRunningPrefix() })) {
      if (e.value.until < now) ids.push(e.key[1] as string);
      if (ids.length >= limit) break;
    }
    return ids;
  }
}
