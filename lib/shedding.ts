/**
 * Load shedding: when the job queue is deep or old, the event loop lags, or the model circuit is
 * not closed, the optional kinds (podcast, slides, concepts, audio) are refused with 503 overloaded
 * and Retry-After, so overviews, finished artifacts and chat keep working. The signals are read
 * at most once per second per process (the queue read lists KV) and shared by concurrent callers.
 */
import type { Config } from "./config.ts";
import { LimitError } from "./errors.ts";
import { metrics, timedKv } from "./metrics.ts";

export type CircuitState = "closed" | "open" | "half_open";

/** What may be refused under load. */
export const OPTIONAL_KINDS = ["podcast", "slides", "concepts", "audio"] as const;
export type OptionalKind = (typeof OPTIONAL_KINDS)[number];

/** True for kinds that shedding may refuse. */
export function isOptionalKind(kind: string): kind is OptionalKind {
  return (OPTIONAL_KINDS as readonly string[]).includes(kind);
}

/** Where load comes from; each may be replaced in tests. */
export interface LoadSignals {
  queue(): Promise<{ depth: number; oldestAgeSeconds: number }>;
  loopDelayMs(): number;
  circuit(): Promise<CircuitState>;
}

export type ShedThresholds = Pick<
  Config["traffic"],
  "shedQueueDepth" | "shedQueueAgeMs" | "shedLoopDelayMs" | "shedOnCircuit"
>;

/** The state /health shows: one entry per refused kind, with the reasons. */
export interface ShedState {
  /** The signals as read (at most `cacheMs` old): /health and /metrics show these too. */
  queue: { depth: number; oldestAgeSeconds: number };
  circuit: CircuitState;
  loopDelayMs: number;
  reasons: string[];
  shedding: { kind: OptionalKind; reason: string }[];
  retryAfterSeconds: number;
}

const RETRY_AFTER_SECONDS = 30;

export class Shedder {
  #cached: { at: number; state: Promise<ShedState> } | null = null;

  constructor(
    private readonly signals: LoadSignals,
    private readonly thresholds: ShedThresholds,
    private readonly cacheMs = 1000,
  ) {}

  /** The current state, from signals at most `cacheMs` old. */
  state(): Promise<ShedState> {
    const now = performance.now();
    if (this.#cached && now - this.#cached.at < this.cacheMs) return this.#cached.state;
    const state = this.#evaluate();
    this.#cached = { at: now, state };
    state.catch(() => this.#cached = null);
    return state;
  }

  async #evaluate(): Promise<ShedState> {
    const t = this.thresholds;
    const [queue, circuit] = await Promise.all([
      this.signals.queue().catch(() => ({ depth: 0, oldestAgeSeconds: 0 })),
      this.signals.circuit().catch(() => "closed" as const),
    ]);
    const loopDelay = this.signals.loopDelayMs();
    const reasons: string[] = [];
    if (t.shedQueueDepth > 0 && queue.depth >= t.shedQueueDepth) {
      reasons.push(`queue depth ${queue.depth} >= ${t.shedQueueDepth}`);
    }
    if (t.shedQueueAgeMs > 0 && queue.oldestAgeSeconds * 1000 >= t.shedQueueAgeMs) {
      reasons.push(`oldest queued job ${queue.oldestAgeSeconds}s >= ${t.shedQueueAgeMs / 1000}s`);
    }
    if (t.shedLoopDelayMs > 0 && loopDelay >= t.shedLoopDelayMs) {
      reasons.push(`event-loop delay ${Math.round(loopDelay)}ms >= ${t.shedLoopDelayMs}ms`);
    }
    // open only: a half-open circuit needs requests to probe with, or it never closes again
    if (t.shedOnCircuit && circuit === "open") reasons.push("model circuit open");
    const reason = reasons.join("; ");
    return {
      queue,
      circuit,
      loopDelayMs: loopDelay,
      reasons,
      shedding: reasons.length ? OPTIONAL_KINDS.map((kind) => ({ kind, reason })) : [],
      retryAfterSeconds: RETRY_AFTER_SECONDS,
    };
  }

  /** Throws 503 overloaded with Retry-After when `kind` is optional and being shed now. */
  async assertAllowed(kind: string): Promise<void> {
    if (!isOptionalKind(kind)) return;
    const state = await this.state();
    if (!state.reasons.length) return;
    metrics.shed.inc({ kind });
    throw new LimitError(
      503,
      "overloaded",
      `The service is under heavy load, so ${kind} is paused for now; overviews, chat and finished artifacts still work.`,
      state.retryAfterSeconds,
      { kind, reasons: state.reasons },
    );
  }
}

/**
 * Samples event-loop delay as timer drift: a timer every `intervalMs` notes how late it fired.
 * One cheap timer per process; the reading decays over a few samples so one spike is not ignored.
 */
export class LoopDelaySampler {
  #timer: ReturnType<typeof setInterval> | undefined;
  #delayMs = 0;

  constructor(private readonly intervalMs = 500) {}

  start(): this {
    if (this.#timer !== undefined) return this;
    let expected = performance.now() + this.intervalMs;
    const timer = setInterval(() => {
      const now = performance.now();
      const drift = Math.max(0, now - expected);
      expected = now + this.intervalMs;
      this.#delayMs = Math.max(drift, this.#delayMs * 0.5);
    }, this.intervalMs);
    Deno.unrefTimer(timer);
    this.#timer = timer;
    return this;
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** The recent delay in milliseconds. */
  delayMs = (): number => this.#delayMs;
}

/** This process's event-loop delay sampler; main.ts starts it (tests may too, and stop it). */
export const loopDelay = new LoopDelaySampler();

interface ShedDeps {
  config: Config;
  jobs: { queueStats(): Promise<{ depth: number; oldestAgeSeconds: number }> };
  models?: { circuit: { state(): Promise<CircuitState> } };
}

const shedders = new WeakMap<object, Shedder>();

/** The process's shedder for an app's dependencies, made on first use from the real signals. */
export function shedderFor(deps: ShedDeps): Shedder {
  let shedder = shedders.get(deps);
  if (!shedder) {
    shedder = new Shedder({
      queue: () => timedKv("queue_stats", () => deps.jobs.queueStats()),
      loopDelayMs: () => loopDelay.delayMs(),
      circuit: () => deps.models?.circuit.state() ?? Promise.resolve("closed"),
    }, deps.config.traffic);
    shedders.set(deps, shedder);
  }
  return shedder;
}

/** Replaces the shedder of an app's dependencies (tests feed it fake signals). */
export function useShedder(deps: object, shedder: Shedder): void {
  shedders.set(deps, shedder);
}
