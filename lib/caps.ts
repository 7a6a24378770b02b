/**
 * Concurrency caps. Open SSE streams are counted per client and per process in memory (a stream
 * is a connection to this process, so that is where it costs); past the caps a new stream gets
 * 429 too_many_streams or 503 overloaded with Retry-After, never a hang. Running ingests are
 * counted per client in KV (an ingest job runs on whichever instance claims it), in one record
 * written with check-and-set, so the cap holds across instances; only a request that starts an
 * ingest takes a slot (IngestCap).
 */
import type { Clock } from "./clock.ts";
import type { AppDeps } from "./deps.ts";
import { LimitError } from "./errors.ts";
import { newId } from "./ids.ts";
import { isEnded, type JobStore } from "./jobs.ts";
import { keys } from "./keys.ts";
import type { Logger } from "./log.ts";
import { metrics } from "./metrics.ts";
import { isTransient } from "./kv_util.ts";

/** A held stream slot; `release` is idempotent, so every exit path may call it. */
export interface StreamSlot {
  release(): void;
}

const STREAM_RETRY_SECONDS = 5;

/** Open-stream counters for one process. */
export class StreamCaps {
  readonly #perClient = new Map<string, number>();
  #open = 0;

  constructor(readonly perClient: number, readonly perProcess: number) {}

  /** Streams open now in this process. */
  get open(): number {
    return this.#open;
  }

  /** Streams `clientId` holds open in this process. */
  openFor(clientId: string): number {
    return this.#perClient.get(clientId) ?? 0;
  }

  /** Takes a slot for `clientId`, or throws 503 overloaded (process full) / 429 too_many_streams. */
  acquire(clientId: string): StreamSlot {
    if (this.perProcess > 0 && this.#open >= this.perProcess) {
      metrics.refused.inc({ code: "overloaded" });
      throw new LimitError(
        503,
        "overloaded",
        "This server has as many open streams as it can hold; try again shortly.",
        STREAM_RETRY_SECONDS,
      );
    }
    const mine = this.#perClient.get(clientId) ?? 0;
    if (this.perClient > 0 && mine >= this.perClient) {
      metrics.refused.inc({ code: "too_many_streams" });
      throw new LimitError(
        429,
        "too_many_streams",
        `You have ${mine} streams open; close one (or wait for one to finish) first.`,
        STREAM_RETRY_SECONDS,
        { limit: this.perClient },
      );
    }
    this.#perClient.set(clientId, mine + 1);
    this.#open++;
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.#open--;
        const left = (this.#perClient.get(clientId) ?? 1) - 1;
        if (left > 0) this.#perClient.set(clientId, left);
        else this.#perClient.delete(clientId);
      },
    };
  }
}

const streamCaps = new WeakMap<object, StreamCaps>();

/** The process's stream caps for an app's dependencies, made on first use. */
export function streamCapsFor(
  deps: { config: { traffic: { streamsPerClient: number; streamsPerProcess: number } } },
): StreamCaps {
  let caps = streamCaps.get(deps);
  if (!caps) {
    caps = new StreamCaps(deps.config.traffic.streamsPerClient, deps.config.traffic.streamsPerProcess);
    streamCaps.set(deps, caps);
  }
  return caps;
}

interface IngestSlotRecord {
  /** slot → the job holding it (none for an upload) and when it lapses regardless. */
  slots: Record<string, { jobId?: string; until: number }>;
}

/** The step that takes a slot for new job `jobId` in the atomic commit creating the job. */
export type TakeIngestSlot = (atomic: Deno.AtomicOperation, jobId: string) => void;

const INGEST_RETRY_SECONDS = 30;

/**
 * One client's running ingests, capped at `cap` (0: no cap) in one KV record written with
 * check-and-set, so the cap holds across instances. Only starting an ingest takes a slot: a new
 * ingest job takes one in the commit that creates it and frees it when the job ends (a request
 * that joins a running job, or finds the repo ingested, takes none); an upload, ingested inside
 * its request, holds one until the request ends. A slot lapses after `ttlMs` regardless, so a
 * crash cannot hold one forever.
 */
export class IngestCap {
  readonly #key: Deno.KvKey;

  constructor(
    private readonly deps: {
      kv: Deno.Kv;
      clock: Clock;
      jobs: Pick<JobStore, "get">;
      log: Pick<Logger, "warn">;
    },
    clientId: string,
    readonly cap: number,
    readonly ttlMs: number,
  ) {
    this.#key = keys.ingestSlots(clientId);
  }

  /**
   * Reads the client's running ingests and returns the step that takes a slot for a new job in
   * the commit that creates it. The step throws 429 too_many_ingests when all slots are taken, and
   * checks the record, so that commit fails (to be retried) if the client's slots changed since.
   */
  async forNewJob(): Promise<TakeIngestSlot> {
    if (this.cap <= 0) return () => {};
    const entry = await this.deps.kv.get<IngestSlotRecord>(this.#key);
    const record = await this.#live(entry.value);
    return (atomic, jobId) => {
      const slots = structuredClone(record);
      this.#take(slots, jobId, jobId);
      this.#write(atomic.check(entry), slots);
    };
  }

  /**
   * Runs `work`, an ingest inside this request (an upload), holding a slot for as long as it runs;
   * 429 too_many_ingests when all are taken.
   */
  async hold<T>(work: () => Promise<T>): Promise<T> {
    if (this.cap <= 0) return await work();
    const token = newId();
    await this.#update(async (stored) => {
      const record = await this.#live(stored);
      this.#take(record, token);
      return record;
    });
    try {
      return await work();
    } finally {
      await this.#update((record) => {
        if (!record?.slots[token]) return null;
        delete record.slots[token];
        return record;
      }).catch((e) => this.deps.log.warn("ingest slot release failed; it lapses", { error: e }));
    }
  }

  /** The record without lapsed slots and slots whose job has ended. */
  async #live(stored: IngestSlotRecord | null): Promise<IngestSlotRecord> {
    const now = this.deps.clock.now();
    const slots = Object.entries(stored?.slots ?? {}).filter(([, s]) => s.until >= now);
    const jobs = await Promise.all(slots.map(([, s]) => s.jobId ? this.deps.jobs.get(s.jobId) : null));
    const running = slots.filter(([, s], i) => !s.jobId || (jobs[i] && !isEnded(jobs[i].status)));
    return { slots: Object.fromEntries(running) };
  }

  /** Adds slot `token` to `record`, or throws 429 too_many_ingests when all are taken. */
  #take(record: IngestSlotRecord, token: string, jobId?: string): void {
    const running = Object.keys(record.slots).length;
    if (running >= this.cap) {
      metrics.refused.inc({ code: "too_many_ingests" });
      throw new LimitError(
        429,
        "too_many_ingests",
        `You already have ${running} ingests running; wait for one to finish.`,
        INGEST_RETRY_SECONDS,
        { limit: this.cap },
      );
    }
    record.slots[token] = { ...(jobId ? { jobId } : {}), until: this.deps.clock.now() + this.ttlMs };
  }

  /** Adds writing `record` to `atomic` (deleting it once empty). */
  #write(atomic: Deno.AtomicOperation, record: IngestSlotRecord): void {
    const untils = Object.values(record.slots).map((s) => s.until);
    const expireIn = Math.max(0, Math.max(...untils) - this.deps.clock.now()) + 60_000;
    if (untils.length) atomic.set(this.#key, record, { expireIn });
    else atomic.delete(this.#key);
  }

  /** Runs a check-and-set step on the record until it commits (`change` returns null: no write). */
  async #update(
    change: (record: IngestSlotRecord | null) => Promise<IngestSlotRecord | null> | IngestSlotRecord | null,
  ): Promise<void> {
    for (let attempt = 0; attempt < 50; attempt++) {
      try {
        const entry = await this.deps.kv.get<IngestSlotRecord>(this.#key);
        const next = await change(structuredClone(entry.value));
        if (!next) return;
        const atomic = this.deps.kv.atomic().check(entry);
        this.#write(atomic, next);
        if ((await atomic.commit()).ok) return;
      } catch (e) {
        if (!isTransient(e)) throw e;
      }
      await new Promise((r) => setTimeout(r, Math.random() * Math.min(200, 2 * 2 ** Math.min(attempt, 7))));
    }
    throw new LimitError(503, "overloaded", "The service is too busy to start an ingest; try again.", 1);
  }
}

/** `clientId`'s cap on running ingests (MAX_INGESTS_PER_CLIENT); a slot lapses after a job's longest run. */
export function ingestCapFor(
  deps: Pick<AppDeps, "kv" | "clock" | "jobs" | "log" | "config">,
  clientId: string,
): IngestCap {
  const { traffic, jobs } = deps.config;
  return new IngestCap(deps, clientId, traffic.ingestsPerClient, jobs.timeoutMs * jobs.maxAttempts);
}
