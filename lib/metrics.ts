/**
 * Process metrics in the Prometheus text format (version 0.0.4): a small hand-written registry of
 * counters, gauges and histograms with labels, and the app's named series. Counters are per
 * process, as Prometheus expects; scrape every instance. Others increment the exported `metrics`.
 */
import type { JobType } from "./jobs.ts";

type Labels = Record<string, string | number>;

const NO_LABELS: Labels = {};

function escapeLabel(v: string): string {
  return v.replaceAll("\\", "\\\\").replaceAll("\n", "\\n").replaceAll('"', '\\"');
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

abstract class Metric<S> {
  protected series = new Map<string, { labels: Labels; state: S }>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
  ) {}

  abstract readonly type: "counter" | "gauge" | "histogram";
  protected abstract fresh(): S;
  protected abstract lines(labels: string, state: S): string[];

  protected state(labels: Labels): S {
    const key = this.labelNames.map((n) => String(labels[n] ?? "")).join("\u0001");
    let entry = this.series.get(key);
    if (!entry) {
      const clean: Labels = {};
      for (const n of this.labelNames) clean[n] = String(labels[n] ?? "");
      entry = { labels: clean, state: this.fresh() };
      this.series.set(key, entry);
    }
    return entry.state;
  }

  protected labelText(labels: Labels, extra?: [string, string]): string {
    const parts = this.labelNames.map((n) => `${n}="${escapeLabel(String(labels[n]))}"`);
    if (extra) parts.push(`${extra[0]}="${escapeLabel(extra[1])}"`);
    return parts.length ? `{${parts.join(",")}}` : "";
  }

  /** Forgets every series (gauges whose label sets change between scrapes). */
  reset(): void {
    this.series.clear();
  }

  render(): string {
    const out = [`# HELP ${this.name} ${this.help.replaceAll("\\", "\\\\").replaceAll("\n", "\\n")}`];
    out.push(`# TYPE ${this.name} ${this.type}`);
    for (const { labels, state } of this.series.values()) {
      out.push(...this.lines(this.labelText(labels), state));
    }
    return out.join("\n");
  }
}

/** A value that only goes up. */
export class Counter extends Metric<{ v: number }> {
  readonly type = "counter";
  protected fresh() {
    return { v: 0 };
  }
  protected lines(labels: string, s: { v: number }) {
    return [`${this.name}${labels} ${formatValue(s.v)}`];
  }
  /** Adds `n` (default 1) to the series with `labels`. */
  inc(labels: Labels = NO_LABELS, n = 1): void {
    if (n > 0) this.state(labels).v += n;
  }
  /** The current value, for tests and health summaries. */
  get(labels: Labels = NO_LABELS): number {
    return this.state(labels).v;
  }
}

/** A value that goes up and down, usually set at scrape time. */
export class Gauge extends Metric<{ v: number }> {
  readonly type = "gauge";
  protected fresh() {
    return { v: 0 };
  }
  protected lines(labels: string, s: { v: number }) {
    return [`${this.name}${labels} ${formatValue(s.v)}`];
  }
  set(labels: Labels, v: number): void {
    this.state(labels).v = v;
  }
  inc(labels: Labels = NO_LABELS, n = 1): void {
    this.state(labels).v += n;
  }
  dec(labels: Labels = NO_LABELS, n = 1): void {
    this.state(labels).v -= n;
  }
  get(labels: Labels = NO_LABELS): number {
    return this.state(labels).v;
  }
}

interface HistogramState {
  counts: number[];
  sum: number;
  count: number;
}

/** Observations counted into cumulative buckets, with their sum and count. */
export class Histogram extends Metric<HistogramState> {
  readonly type = "histogram";
  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    readonly buckets: readonly number[],
  ) {
    super(name, help, labelNames);
  }
  protected fresh(): HistogramState {
    return { counts: this.buckets.map(() => 0), sum: 0, count: 0 };
  }
  protected lines(_labels: string, _s: HistogramState): string[] {
    return [];
  }
  override render(): string {
    const out = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const { labels, state } of this.series.values()) {
      let cumulative = 0;
      this.buckets.forEach((le, i) => {
        cumulative += state.counts[i];
        out.push(`${this.name}_bucket${this.labelText(labels, ["le", formatValue(le)])} ${cumulative}`);
      });
      out.push(`${this.name}_bucket${this.labelText(labels, ["le", "+Inf"])} ${state.count}`);
      out.push(`${this.name}_sum${this.labelText(labels)} ${formatValue(state.sum)}`);
      out.push(`${this.name}_count${this.labelText(labels)} ${state.count}`);
    }
    return out.join("\n");
  }
  /** Records one observation (seconds, for the duration histograms here). */
  observe(labels: Labels, value: number): void {
    const s = this.state(labels);
    const i = this.buckets.findIndex((le) => value <= le);
    if (i >= 0) s.counts[i]++;
    s.sum += value;
    s.count++;
  }
  /** Number of observations, for tests. */
  count(labels: Labels = NO_LABELS): number {
    return this.state(labels).count;
  }
}

/** A set of metrics rendered together. */
export class Registry {
  readonly #metrics: { name: string; render(): string }[] = [];

  #add<M extends { name: string; render(): string }>(m: M): M {
    if (this.#metrics.some((x) => x.name === m.name)) throw new Error(`metric ${m.name} registered twice`);
    this.#metrics.push(m);
    return m;
  }
  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.#add(new Counter(name, help, labelNames));
  }
  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return this.#add(new Gauge(name, help, labelNames));
  }
  histogram(
    name: string,
    help: string,
    labelNames: readonly string[],
    buckets: readonly number[],
  ): Histogram {
    return this.#add(new Histogram(name, help, labelNames, buckets));
  }
  /** The whole registry as Prometheus text. */
  render(): string {
    return this.#metrics.map((m) => m.render()).join("\n") + "\n";
  }
}

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const JOB_BUCKETS = [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
const KV_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1];

/** This process's registry. */
export const registry = new Registry();

/**
 * The app's series. Others increment these where the event happens, e.g.
 * `metrics.modelCalls.inc({ provider: "openai", operation: "generate" })`.
 */
export const metrics = {
  httpRequests: registry.counter(
    "repolm_http_requests_total",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
  ),
  httpDuration: registry.histogram(
    "repolm_http_request_duration_seconds",
    "Time to the response headers, by route template and method.",
    ["route", "method"],
    LATENCY_BUCKETS,
  ),
  rateLimited: registry.counter(
    "repolm_rate_limited_total",
    "Requests refused with 429 rate_limited, by policy.",
    [
      "policy",
    ],
  ),
  shed: registry.counter(
    "repolm_shed_total",
    "Requests refused with 503 overloaded by load shedding, by kind.",
    [
      "kind",
    ],
  ),
  refused: registry.counter(
    "repolm_refused_total",
    "Requests refused by a cap or quota, by error code (too_many_streams, too_many_ingests, overloaded, quota_exceeded).",
    ["code"],
  ),
  queueDepth: registry.gauge("repolm_queue_depth", "Jobs waiting to run (all instances, from KV)."),
  queueOldestAge: registry.gauge("repolm_queue_oldest_age_seconds", "Age of the oldest waiting job."),
  jobs: registry.counter(
    "repolm_jobs_total",
    "Job runs ended in this process, by type and outcome (succeeded, failed, retried).",
    ["type", "outcome"],
  ),
  jobDuration: registry.histogram(
    "repolm_job_duration_seconds",
    "Duration of job runs in this process, by type and outcome.",
    ["type", "outcome"],
    JOB_BUCKETS,
  ),
  modelCalls: registry.counter(
    "repolm_model_calls_total",
    "Language-model calls started, by provider and operation (generate, chat, speech).",
    ["provider", "operation"],
  ),
  modelTokens: registry.counter(
    "repolm_model_tokens_total",
    "Language-model tokens, by provider and direction (input, output).",
    ["provider", "direction"],
  ),
  modelErrors: registry.counter(
    "repolm_model_errors_total",
    "Failed language-model calls, by provider and error code.",
    ["provider", "code"],
  ),
  circuitState: registry.gauge(
    "repolm_circuit_state",
    "Model circuit breaker: 1 for the current state (closed, open, half_open), 0 otherwise.",
    ["state"],
  ),
  openStreams: registry.gauge("repolm_open_streams", "Server-Sent Event streams open in this process."),
  kvLatency: registry.histogram(
    "repolm_kv_latency_seconds",
    "Deno KV round trips timed by traffic control and probes, by operation.",
    ["op"],
    KV_BUCKETS,
  ),
  memory: registry.gauge(
    "repolm_process_memory_bytes",
    "Process memory (rss, heap_total, heap_used, external).",
    [
      "kind",
    ],
  ),
  loopDelay: registry.gauge("repolm_event_loop_delay_seconds", "Recent event-loop delay (timer drift)."),
  shedding: registry.gauge("repolm_shedding", "1 for each optional kind being shed now.", ["kind"]),
} as const;

/** Records a finished model call: one call, its tokens, and its error code if it failed. */
export function recordModelCall(
  provider: string,
  operation: "generate" | "chat" | "speech",
  usage: { inputTokens?: number; outputTokens?: number } = {},
  errorCode?: string,
): void {
  metrics.modelCalls.inc({ provider, operation });
  metrics.modelTokens.inc({ provider, direction: "input" }, usage.inputTokens ?? 0);
  metrics.modelTokens.inc({ provider, direction: "output" }, usage.outputTokens ?? 0);
  if (errorCode) metrics.modelErrors.inc({ provider, code: errorCode });
}

/** Worker events that feed the job series; pass to `new Worker(..., log, jobMetricsEvents())`. */
export function jobMetricsEvents() {
  return {
    onJobEnd(type: JobType, outcome: "succeeded" | "failed" | "retried", ms: number): void {
      metrics.jobs.inc({ type, outcome });
      metrics.jobDuration.observe({ type, outcome }, ms / 1000);
    },
  };
}

/** Times a KV operation into `repolm_kv_latency_seconds{op}`. */
export async function timedKv<T>(op: string, run: () => Promise<T>): Promise<T> {
  const start = performance.now();
  try {
    return await run();
  } finally {
    metrics.kvLatency.observe({ op }, (performance.now() - start) / 1000);
  }
}
