/**
 * Load-test bookkeeping: per-operation samples gathered in worker threads, merged, summarised
 * into the JSON the tool writes, and compared with an earlier run. Outcomes are kept apart:
 * `ok`, `intended` (429 or 503 that carry Retry-After, and stream `error` events with such codes:
 * the service saying "not now" as API.md promises) and `failures` (everything else: 5xx, other
 * 4xx, 429/503 without Retry-After, network errors, timeouts, streams cut or left hanging).
 */

/** Raw samples of one operation, as a worker collects them. */
export interface OpSamples {
  /** Milliseconds to the whole answer (for streams: to the last event) of ok outcomes. */
  latency: number[];
  /** Milliseconds to the first event of ok streams. */
  ttfe: number[];
  /** Milliseconds to the response headers of ok streams. */
  ttfb: number[];
  ok: number;
  /** Intended refusals by `STATUS code`, e.g. `429 rate_limited`. */
  intended: Record<string, number>;
  /** Failures by reason, e.g. `500 internal`, `network: connection reset`, `timeout`. */
  failures: Record<string, number>;
  /** A few failure details (status, body excerpt) to read after the run. */
  examples: string[];
}

export function emptySamples(): OpSamples {
  return { latency: [], ttfe: [], ttfb: [], ok: 0, intended: {}, failures: {}, examples: [] };
}

/** All operations of one worker (or of the whole run, once merged). */
export type Samples = Record<string, OpSamples>;

/** Adds `from` into `into`. */
export function mergeSamples(into: Samples, from: Samples): Samples {
  for (const [op, s] of Object.entries(from)) {
    const t = into[op] ??= emptySamples();
    for (const x of s.latency) t.latency.push(x);
    for (const x of s.ttfe) t.ttfe.push(x);
    for (const x of s.ttfb ?? []) t.ttfb.push(x);
    t.ok += s.ok;
    for (const [k, n] of Object.entries(s.intended)) t.intended[k] = (t.intended[k] ?? 0) + n;
    for (const [k, n] of Object.entries(s.failures)) t.failures[k] = (t.failures[k] ?? 0) + n;
    for (const e of s.examples) if (t.examples.length < 10) t.examples.push(e);
  }
  return into;
}

export interface Distribution {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentiles, in ms rounded to 0.1; null when there are no samples. */
export function distribution(values: number[]): Distribution | null {
  if (!values.length) return null;
  const sorted = Float64Array.from(values).sort();
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
  const r = (x: number) => Math.round(x * 10) / 10;
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    count: sorted.length,
    p50: r(at(50)),
    p95: r(at(95)),
    p99: r(at(99)),
    max: r(sorted[sorted.length - 1]),
    mean: r(sum / sorted.length),
  };
}

/** One operation (or group of operations) as the report shows it. */
export interface OpSummary {
  answers: number;
  ok: number;
  intended: number;
  failures: number;
  /** failures / answers. */
  failureRate: number;
  intendedRate: number;
  /** Answers per second over the scenario's measured time. */
  throughput: number;
  latencyMs: Distribution | null;
  ttfeMs: Distribution | null;
  /** Streams: time to the response headers. */
  headersMs: Distribution | null;
  intendedBy: Record<string, number>;
  failuresBy: Record<string, number>;
  examples: string[];
}

const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);

/** Summarises samples measured over `seconds`. */
export function summarise(s: OpSamples, seconds: number): OpSummary {
  const intended = sum(s.intended);
  const failures = sum(s.failures);
  const answers = s.ok + intended + failures;
  const round = (x: number, d = 4) => Math.round(x * 10 ** d) / 10 ** d;
  return {
    answers,
    ok: s.ok,
    intended,
    failures,
    failureRate: answers ? round(failures / answers, 6) : 0,
    intendedRate: answers ? round(intended / answers, 6) : 0,
    throughput: seconds > 0 ? round(answers / seconds, 1) : 0,
    latencyMs: distribution(s.latency),
    ttfeMs: distribution(s.ttfe),
    headersMs: distribution(s.ttfb ?? []),
    intendedBy: s.intended,
    failuresBy: s.failures,
    examples: s.examples,
  };
}

/** Operations are grouped for the targets: reads, polls, streams, chats, ingests, health. */
export function groupOf(op: string): string {
  if (op.includes("/health")) return "health";
  if (op.startsWith("GET /api/jobs")) return "poll";
  if (op.includes("/stream")) return "stream";
  if (op.includes("/chat")) return "chat";
  if (op.includes("/upload") || op === "POST /api/repos") return "ingest";
  return "read";
}

/** Merges the operations of each group. */
export function byGroup(samples: Samples): Samples {
  const out: Samples = {};
  for (const [op, s] of Object.entries(samples)) mergeSamples(out, { [groupOf(op)]: s });
  return out;
}

/** What the tool writes for one scenario. */
export interface ScenarioResult {
  scenario: string;
  users: number;
  durationSeconds: number;
  /** 1-minute load average of this machine before and after (the machine may be shared). */
  loadAverage: { before: number[]; after: number[] };
  /** Every operation together. */
  total: OpSummary;
  groups: Record<string, OpSummary>;
  ops: Record<string, OpSummary>;
  /** Scenario-specific checks (viral: identical texts, model calls …). */
  checks: Record<string, unknown>;
  /** Server resource use when the tool could read it (RSS of local instances). */
  servers?: unknown;
}

export interface RunResult {
  tool: "repolm-loadtest";
  version: 1;
  startedAt: string;
  command: string;
  urls: string[];
  users: number;
  durationSeconds: number;
  clients: string;
  cpus: number;
  scenarios: Record<string, ScenarioResult>;
}

/** The scenario results for the given samples. */
export function scenarioResult(
  scenario: string,
  users: number,
  seconds: number,
  samples: Samples,
  extra: Pick<ScenarioResult, "loadAverage" | "checks"> & { servers?: unknown },
): ScenarioResult {
  const all = { total: emptySamples() };
  for (const s of Object.values(samples)) mergeSamples(all, { total: s });
  return {
    scenario,
    users,
    durationSeconds: Math.round(seconds * 10) / 10,
    loadAverage: extra.loadAverage,
    total: summarise(all.total, seconds),
    groups: Object.fromEntries(Object.entries(byGroup(samples)).map(([g, s]) => [g, summarise(s, seconds)])),
    ops: Object.fromEntries(Object.entries(samples).map(([op, s]) => [op, summarise(s, seconds)])),
    checks: extra.checks,
    ...(extra.servers ? { servers: extra.servers } : {}),
  };
}

const fmt = (x: number | undefined, d = 1) => x === undefined || Number.isNaN(x) ? "-" : x.toFixed(d);
const pct = (x: number) => `${(x * 100).toFixed(x > 0 && x < 0.001 ? 3 : 2)}%`;

/** Human-readable lines for one scenario. */
export function formatScenario(r: ScenarioResult): string {
  const lines = [
    `${r.scenario}: ${r.users} users, ${fmt(r.durationSeconds)} s, load average ${
      r.loadAverage.before[0]?.toFixed(2)
    } → ${r.loadAverage.after[0]?.toFixed(2)}`,
  ];
  const row = (name: string, s: OpSummary) => {
    const l = s.latencyMs;
    const t = s.ttfeMs;
    lines.push(
      `  ${name.padEnd(40)} ${String(s.answers).padStart(7)} answers ${fmt(s.throughput).padStart(8)}/s` +
        `  p50 ${fmt(l?.p50).padStart(6)}  p95 ${fmt(l?.p95).padStart(6)}  p99 ${
          fmt(l?.p99).padStart(7)
        } ms` +
        (t ? `  first event p50 ${fmt(t.p50)} p99 ${fmt(t.p99)} ms` : "") +
        (s.headersMs ? ` (headers p50 ${fmt(s.headersMs.p50)} p99 ${fmt(s.headersMs.p99)})` : "") +
        `  intended ${pct(s.intendedRate)}  failed ${pct(s.failureRate)}`,
    );
    for (const [k, n] of Object.entries(s.failuresBy)) lines.push(`      failure ${k}: ${n}`);
  };
  row("all", r.total);
  for (const [g, s] of Object.entries(r.groups)) row(`[${g}]`, s);
  for (const [op, s] of Object.entries(r.ops)) row(op, s);
  for (const [k, v] of Object.entries(r.checks)) lines.push(`  check ${k}: ${JSON.stringify(v)}`);
  return lines.join("\n");
}

function delta(now: number | undefined, before: number | undefined, unit: string, d = 1): string {
  if (now === undefined || before === undefined) return "-";
  const diff = now - before;
  const rel = before ? ` (${diff >= 0 ? "+" : ""}${((diff / before) * 100).toFixed(0)}%)` : "";
  return `${fmt(now, d)}${unit} ${diff >= 0 ? "+" : ""}${fmt(diff, d)}${rel}`;
}

/** Lines comparing a run with an earlier one, scenario by scenario and group by group. */
export function formatCompare(now: RunResult, before: RunResult): string {
  const lines = [`compared with ${before.startedAt} (${before.command})`];
  for (const [name, r] of Object.entries(now.scenarios)) {
    const b = before.scenarios[name];
    if (!b) {
      lines.push(`${name}: not in the earlier run`);
      continue;
    }
    lines.push(`${name}:`);
    const rows: [string, OpSummary, OpSummary | undefined][] = [["all", r.total, b.total]];
    for (const [g, s] of Object.entries(r.groups)) rows.push([`[${g}]`, s, b.groups[g]]);
    for (const [label, s, o] of rows) {
      if (!o) {
        lines.push(`  ${label}: new`);
        continue;
      }
      lines.push(
        `  ${label.padEnd(10)} throughput ${delta(s.throughput, o.throughput, "/s")}` +
          `  p50 ${delta(s.latencyMs?.p50, o.latencyMs?.p50, "ms")}` +
          `  p99 ${delta(s.latencyMs?.p99, o.latencyMs?.p99, "ms")}` +
          (s.ttfeMs || o.ttfeMs ? `  first event p99 ${delta(s.ttfeMs?.p99, o.ttfeMs?.p99, "ms")}` : "") +
          `  failed ${pct(s.failureRate)} (was ${pct(o.failureRate)})`,
      );
    }
  }
  return lines.join("\n");
}
