/**
 * Concurrency caps. Open SSE streams are counted per client and per process in memory (a stream
 * is a connection to this process, so that is where it costs); past the caps a new stream gets
 * 429 too_many_streams or 503 overloaded with Retry-After, never a hang. Running ingests are
 * counted per client in KV (an ingest job runs on whichever instance claims it), in one record
 * updated with check-and-set, so the cap holds across instances.
 */
import type { Clock } from "./clock.ts";
import { LimitError } from "./errors.ts";
import { isEnded, type JobRecord, type JobStore } from "./jobs.ts";
import { keys } from "./keys.ts";
import { metrics } from "./metrics.ts";

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
  /** token → the job it became (once known) and when the slot lapses regardless. */
  slots: Record<string, { jobId?: string; until: number }>;
}

/** A held ingest slot: bound to the job it started, or released when the request made none. */
export interface IngestSlot {
  bindJob(jobId: string): Promise<void>;
  release(): Promise<void>;
}

const INGEST_RETRY_SECONDS = 30;

function isTransient(e: unknown): boolean {
  return e instanceof Error && /database is locked|busy/i.test(e.message);
}

/** Runs a check-and-set step on a client's ingest record until it commits. */
async function updateSlots(
  kv: Deno.Kv,
  clock: Clock,
  clientId: string,
  change: (record: IngestSlotRecord) => Promise<IngestSlotRecord | null> | IngestSlotRecord | null,
): Promise<void> {
  const key = keys.ingestSlots(clientId);
  for (let attempt = 0; attempt < 50; attempt++) {
    try {
      const entry = await kv.get<IngestSlotRecord>(key);
      const next = await change(structuredClone(entry.value ?? { slots: {} }));
      if (!next) return;
      const atomic = kv.atomic().check(entry);
      const untils = Object.values(next.slots).map((s) => s.until);
      const expireIn = Math.max(0, Math.max(...untils) - clock.now()) + 60_000;
      if (untils.length) atomic.set(key, next, { expireIn });
      else atomic.delete(key);
      if ((await atomic.commit()).ok) return;
    } catch (e) {
      if (!isTransient(e)) throw e;
    }
    await new Promise((r) => setTimeout(r, Math.random() * Math.min(200, 2 * 2 ** Math.min(attempt, 7))));
  }
  throw new LimitError(503, "overloaded", "The service is too busy to start an ingest; try again.", 1);
}

/**
 * Takes one of `cap` running-ingest slots for `clientId` (throws 429 too_many_ingests when all are
 * taken). Slots bound to jobs are freed as soon as their job has ended; any slot lapses after
 * `ttlMs` so a crash cannot hold one forever.
 */
export async function acquireIngestSlot(
  deps: { kv: Deno.Kv; clock: Clock; jobs: Pick<JobStore, "get"> },
  clientId: string,
  cap: number,
  token: string,
  ttlMs: number,
): Promise<IngestSlot> {
  const { kv, clock, jobs } = deps;
  await updateSlots(kv, clock, clientId, async (record) => {
    const now = clock.now();
    for (const [t, slot] of Object.entries(record.slots)) {
      if (slot.until < now) delete record.slots[t];
    }
    const bound = Object.entries(record.slots).filter(([, s]) => s.jobId);
    const jobsNow = await Promise.all(bound.map(([, s]) => jobs.get(s.jobId!)));
    bound.forEach(([t], i) => {
      const job: JobRecord | null = jobsNow[i];
      if (!job || isEnded(job.status)) delete record.slots[t];
    });
    const running = new Set(Object.entries(record.slots).map(([t, s]) => s.jobId ?? t)).size;
    if (running >= cap) {
      metrics.refused.inc({ code: "too_many_ingests" });
      throw new LimitError(
        429,
        "too_many_ingests",
        `You already have ${running} ingests running; wait for one to finish.`,
        INGEST_RETRY_SECONDS,
        { limit: cap },
      );
    }
    record.slots[token] = { until: now + ttlMs };
    return record;
  });
  return {
    bindJob: (jobId) =>
      updateSlots(kv, clock, clientId, (record) => {
        if (!record.slots[token]) return null;
        record.slots[token] = { jobId, until: clock.now() + ttlMs };
        return record;
      }),
    release: () =>
      updateSlots(kv, clock, clientId, (record) => {
        if (!record.slots[token]) return null;
        delete record.slots[token];
        return record;
      }),
  };
}
