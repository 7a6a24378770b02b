/**
 * `deno task loadtest --url URL[,URL...] --users N --duration S --scenario NAME --output FILE.json
 *  [--compare OLD.json] [--workers 2] [--think-ms MS] [--timeout-ms 30000] [--cluster-stats URL]
 *  [--no-xff] [--api-key KEY] [--client raw|fetch]`
 *
 * Scenarios: health, read, poll, viral, chat, ingest, mixed, or all (each in turn). Each creates
 * what it needs through the API first (a fixture repo uploaded as a .tar.gz, artifacts asked
 * for), then runs N simulated users for S seconds, spread round-robin over the URLs, in worker
 * threads (loadtest_worker.ts). It reports, per operation and per group, throughput, p50/p95/p99
 * latency, time to first event for streams, and intended refusals (429/503 with Retry-After)
 * apart from failures. Exit status 1 when a scenario's failure rate is above 5 %.
 *
 * Every user is a distinct client: it sends its own X-Forwarded-For address (10.x.y.z, a fresh
 * range each run), so the app's per-client limits apply per simulated user as they would to real
 * people — which needs the app to trust one proxy hop (TRUST_PROXY=1; `deno task cluster` sets
 * it). Against an app that does not trust the header, every user is 127.0.0.1 and shares one
 * client's limits: expect 429s (the tool says so). `--no-xff` sends no header; `--api-key` sends
 * one key for everybody (its tier's limits then apply to the whole load).
 *
 * Plain GETs go over one raw keep-alive HTTP/1.1 connection per user (as a browser keeps one; it
 * costs the client about a third less CPU than `fetch`, which matters on a machine shared with the
 * app); `--client fetch` uses `fetch` instead. POSTs always use `fetch`.
 *
 * `--cluster-stats URL` (printed by `deno task cluster`) adds each scenario's model calls (from
 * the fake OpenAI server) and the instances' RSS and CPU.
 */
// Harness code reading arbitrary JSON answers of the API under test.
// deno-lint-ignore-file no-explicit-any
import { parseArgs } from "node:util";
import { buildTarGz } from "../tests/fakes/archives.ts";
import { SAMPLE_REPO } from "../tests/model_fixtures.ts";
import {
  formatCompare,
  formatScenario,
  mergeSamples,
  type RunResult,
  type Samples,
  type ScenarioResult,
  scenarioResult,
} from "./loadtest_stats.ts";
import {
  fnv,
  type Role,
  type Targets,
  userAddress,
  type WorkerPlan,
  type WorkerReport,
} from "./loadtest_worker.ts";

const USAGE = `deno task loadtest --url URL[,URL...] --users N --duration S --scenario NAME --output FILE.json
  [--compare OLD.json] [--workers 2] [--think-ms MS] [--timeout-ms 30000] [--ramp-seconds S]
  [--cluster-stats URL] [--no-xff] [--api-key KEY] [--client raw|fetch]

Scenarios: health, read, poll, viral, chat, ingest, mixed, all. Only 127.0.0.1/localhost URLs.
Each simulated user sends its own X-Forwarded-For, so run the app with TRUST_PROXY=1
(deno task cluster does). Exit status 1 when a scenario's failure rate is above 5 %.`;

export const SCENARIOS = ["health", "read", "poll", "viral", "chat", "ingest", "mixed"] as const;
export type Scenario = (typeof SCENARIOS)[number];

interface ScenarioSpec {
  roles: [Role, number][];
  think: Partial<Record<Role, number>>;
  setup: ("repo" | "doneArtifact" | "jobs" | "liveArtifact")[];
}

/** Who the users are in each scenario, how often they act (ms between actions), what setup makes. */
const SPECS: Record<Scenario, ScenarioSpec> = {
  health: { roles: [["health", 1]], think: { health: 1000 }, setup: [] },
  read: { roles: [["reader", 1]], think: { reader: 1000 }, setup: ["repo", "doneArtifact"] },
  poll: { roles: [["poller", 1]], think: { poller: 1000 }, setup: ["repo", "jobs"] },
  viral: { roles: [["viral", 1]], think: {}, setup: ["repo", "liveArtifact"] },
  chat: { roles: [["chatter", 1]], think: { chatter: 10_000 }, setup: ["repo"] },
  ingest: { roles: [["ingester", 1]], think: { ingester: 15_000 }, setup: [] },
  mixed: {
    roles: [["reader", 0.45], ["poller", 0.25], ["viewer", 0.2], ["chatter", 0.08], ["ingester", 0.02]],
    think: { reader: 2000, poller: 1000, viewer: 5000, chatter: 10_000, ingester: 20_000 },
    setup: ["repo", "doneArtifact", "jobs"],
  },
};

const QUESTIONS = [
  "What does this repository do?",
  "Where is parseWidget defined?",
  "How do I start it?",
  "Which files matter most?",
  "What does src/index.js print?",
];

export interface LoadOptions {
  urls: string[];
  users: number;
  durationSeconds: number;
  scenarios: Scenario[];
  workers: number;
  thinkMs?: number;
  timeoutMs: number;
  xff: boolean;
  apiKey?: string;
  clusterStats?: string;
  /** How plain GETs are sent: one raw keep-alive HTTP/1.1 connection per user (cheap), or fetch. */
  client: "raw" | "fetch";
  /** Viral only: viewers connect spread over this many seconds (default: a tenth of the duration, ≤ 10 s). */
  rampSeconds?: number;
  log?: (line: string) => void;
}

interface ClusterStats {
  llm?: { chat: number; speech: number; aborted: number };
  instances?: { url: string; pid: number; rssMb: number; peakMb: number; cpuSeconds: number }[];
}

async function clusterStats(url?: string): Promise<ClusterStats | null> {
  if (!url) return null;
  try {
    const res = await fetch(url);
    return res.ok ? await res.json() : null;
  } catch {
    return null;
  }
}

/** The setup client: one more address after the users', so setup never uses up a user's limits. */
class SetupClient {
  constructor(readonly base: string, readonly headers: Record<string, string>) {}

  async json(path: string, init: RequestInit = {}): Promise<{ status: number; body: any }> {
    const res = await fetch(this.base + path, {
      ...init,
      headers: { ...this.headers, ...(init.headers as Record<string, string>) },
    });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch { /* not JSON */ }
    return { status: res.status, body };
  }

  post(path: string, body: unknown) {
    return this.json(path, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  }
}

async function uploadFixture(
  client: SetupClient,
  marker: string,
): Promise<{ repoId: string; files: string[] }> {
  const entries = [...SAMPLE_REPO, { path: "LOADTEST.md", content: `Load test run ${marker}\n` }];
  const form = new FormData();
  form.append("file", new Blob([await buildTarGz(entries)]), "loadtest.tar.gz");
  const { status, body } = await client.json("/api/repos/upload", { method: "POST", body: form });
  if (status !== 200) throw new Error(`setup: upload answered ${status} ${JSON.stringify(body)}`);
  return { repoId: body.repo.id, files: entries.map((e) => e.path) };
}

/**
 * The setup client is one client with the normal read limit (120/min by default): it polls at most
 * twice a second and waits out a 429's Retry-After.
 */
async function getArtifact(client: SetupClient, id: string): Promise<{ status: number; body: any }> {
  const res = await client.json(`/api/artifacts/${id}`).catch(() => ({ status: 0, body: null }));
  if (res.status === 429) {
    const wait = Number(res.body?.error?.retryAfterSeconds ?? 1);
    await new Promise((r) => setTimeout(r, Math.min(60, Math.max(1, wait)) * 1000));
  }
  return res;
}

async function waitForArtifact(client: SetupClient, id: string, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const { status, body } = await getArtifact(client, id);
    if (status === 200 && (body.status === "done" || body.status === "failed")) return body;
    if (Date.now() > deadline) throw new Error(`setup: artifact ${id} not done after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Creates what a scenario's users act on, through the API. */
async function setup(spec: ScenarioSpec, client: SetupClient, marker: string): Promise<Targets> {
  const targets: Targets = { questions: QUESTIONS };
  if (!spec.setup.includes("repo")) return targets;
  const { repoId, files } = await uploadFixture(client, marker);
  targets.repoId = repoId;
  targets.files = files;
  if (spec.setup.includes("doneArtifact")) {
    const asked = await client.post(`/api/repos/${repoId}/artifacts`, { kind: "overview" });
    if (asked.status !== 200 && asked.status !== 202) {
      throw new Error(`setup: artifact answered ${asked.status} ${JSON.stringify(asked.body)}`);
    }
    const done = await waitForArtifact(client, asked.body.artifact.id, 120_000);
    if (done.status !== "done") throw new Error(`setup: the overview failed: ${JSON.stringify(done.error)}`);
    targets.doneArtifactId = done.id;
  }
  if (spec.setup.includes("jobs")) {
    const jobIds: string[] = [];
    for (
      const body of [
        { kind: "slides" },
        { kind: "podcast" },
        { kind: "concepts", concept: "parsing" },
        { kind: "overview", expertise: "expert" },
      ]
    ) {
      const asked = await client.post(`/api/repos/${repoId}/artifacts`, body);
      if (asked.body?.job?.id) jobIds.push(asked.body.job.id);
    }
    if (!jobIds.length) throw new Error("setup: no artifact request answered with a job to poll");
    targets.jobIds = jobIds;
  }
  if (spec.setup.includes("liveArtifact")) {
    const asked = await client.post(`/api/repos/${repoId}/artifacts`, { kind: "overview" });
    if (asked.status !== 202 && asked.status !== 200) {
      throw new Error(`setup: artifact answered ${asked.status} ${JSON.stringify(asked.body)}`);
    }
    targets.liveArtifactId = asked.body.artifact.id;
  }
  return targets;
}

/** `n` roles in the spec's proportions, shuffled so every worker gets a mix. */
function assignRoles(spec: ScenarioSpec, n: number): Role[] {
  const roles: Role[] = [];
  let assigned = 0;
  spec.roles.forEach(([role, share], i) => {
    const count = i === spec.roles.length - 1 ? n - assigned : Math.round(share * n);
    for (let k = 0; k < count && roles.length < n; k++) roles.push(role);
    assigned += count;
  });
  for (let i = roles.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [roles[i], roles[j]] = [roles[j], roles[i]];
  }
  return roles;
}

function runWorker(worker: Worker, plan: WorkerPlan): Promise<WorkerReport> {
  return new Promise((resolve, reject) => {
    worker.onmessage = (e) => resolve(e.data);
    worker.onerror = (e) => {
      e.preventDefault();
      reject(new Error(`load worker failed: ${e.message}`));
    };
    worker.postMessage({ op: "run", plan });
  });
}

/** Watches an artifact from the setup side: when it was done, how many model calls it took. */
function watchArtifact(client: SetupClient, id: string) {
  let stop = false;
  let doneAt: number | null = null;
  let final: any = null;
  const done = (async () => {
    while (!stop) {
      const { status, body } = await getArtifact(client, id);
      if (status === 200 && (body.status === "done" || body.status === "failed")) {
        doneAt = Date.now();
        final = body;
        return;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  })();
  return {
    async result() {
      stop = true;
      await done;
      // missed (the run ended first): the finished artifact, to compare the viewers' text with
      for (let i = 0; i < 5 && !final; i++) {
        const { status, body } = await getArtifact(client, id);
        if (status === 200 && (body.status === "done" || body.status === "failed")) final = body;
        else await new Promise((r) => setTimeout(r, 1000));
      }
      return { doneAt, final };
    },
  };
}

/** Runs one scenario and returns its result. */
async function runScenario(name: Scenario, opts: LoadOptions, workers: Worker[]): Promise<ScenarioResult> {
  const log = opts.log ?? console.log;
  const spec = SPECS[name];
  const xffBase = Math.floor(Math.random() * 0x700000);
  const setupHeaders: Record<string, string> = {};
  if (opts.xff) setupHeaders["X-Forwarded-For"] = userAddress(xffBase + opts.users + 1);
  if (opts.apiKey) setupHeaders["Authorization"] = `Bearer ${opts.apiKey}`;
  const client = new SetupClient(opts.urls[0], setupHeaders);
  const marker = `${name}-${Date.now()}-${xffBase}`;
  const statsBeforeSetup = await clusterStats(opts.clusterStats);
  const targets = await setup(spec, client, marker);
  const roles = assignRoles(spec, opts.users);
  const think = opts.thinkMs ? Object.fromEntries(spec.roles.map(([r]) => [r, opts.thinkMs!])) : spec.think;
  const viral = name === "viral";
  const startAt = Date.now() + 300;
  const durationMs = opts.durationSeconds * 1000;
  const endAt = startAt + durationMs;
  const plan = (w: number): WorkerPlan => ({
    scenario: name,
    urls: opts.urls,
    users: roles.map((role, index) => ({ index, role })).filter((u) => u.index % workers.length === w),
    totalUsers: opts.users,
    startAt,
    endAt,
    hardEndAt: viral ? endAt : endAt + opts.timeoutMs,
    rampMs: viral ? (opts.rampSeconds ?? Math.min(10, opts.durationSeconds / 10)) * 1000 : 0,
    think,
    xffBase: opts.xff ? xffBase : null,
    apiKey: opts.apiKey,
    timeoutMs: opts.timeoutMs,
    targets,
    rawGets: opts.client === "raw",
  });
  const statsBefore = await clusterStats(opts.clusterStats);
  const loadBefore = Deno.loadavg();
  const watch = viral ? watchArtifact(client, targets.liveArtifactId!) : null;
  log(`${name}: ${opts.users} users for ${opts.durationSeconds} s against ${opts.urls.join(", ")} …`);
  const reports = await Promise.all(workers.map((w, i) => runWorker(w, plan(i))));
  const finishedAt = Date.now();
  const loadAfter = Deno.loadavg();
  const statsAfter = await clusterStats(opts.clusterStats);
  const samples: Samples = {};
  for (const r of reports) mergeSamples(samples, r.samples);
  const checks: Record<string, unknown> = {};
  if (watch) {
    const { doneAt, final } = await watch.result();
    const texts: Record<string, number> = {};
    for (const r of reports) for (const [h, n] of Object.entries(r.texts)) texts[h] = (texts[h] ?? 0) + n;
    const expected = final?.content !== undefined ? fnv(final.content) : null;
    checks.artifact = targets.liveArtifactId;
    checks.artifactStatus = final?.status ?? "not finished";
    checks.generationSeconds = doneAt ? Math.round((doneAt - startAt) / 100) / 10 : null;
    checks.viewersWithFullIdenticalText = expected ? texts[expected] ?? 0 : 0;
    checks.viewersWithOtherText = Object.entries(texts).filter(([h]) => h !== expected).reduce(
      (a, [, n]) => a + n,
      0,
    );
    checks.viewersUnfinished = reports.reduce((a, r) => a + r.unfinished, 0);
  }
  if (statsBefore?.llm && statsAfter?.llm) {
    checks.modelCalls = statsAfter.llm.chat - statsBefore.llm.chat;
    // viral: setup only uploads the repo and asks for the artifact, so this is the artifact's count
    if (statsBeforeSetup?.llm) checks.modelCallsWithSetup = statsAfter.llm.chat - statsBeforeSetup.llm.chat;
  }
  const seconds = viral ? (finishedAt - startAt) / 1000 : opts.durationSeconds;
  let servers: unknown;
  if (statsBefore?.instances && statsAfter?.instances) {
    servers = statsAfter.instances.map((s) => {
      const b = statsBefore.instances!.find((x) => x.pid === s.pid);
      const cpu = b ? s.cpuSeconds - b.cpuSeconds : null;
      return {
        url: s.url,
        rssMb: Math.round(s.rssMb),
        peakRssMb: Math.round(s.peakMb),
        cpuSeconds: cpu === null ? null : Math.round(cpu * 10) / 10,
        cpuPercentOfOneCore: cpu === null ? null : Math.round((100 * cpu) / seconds),
      };
    });
  }
  const result = scenarioResult(name, opts.users, seconds, samples, {
    loadAverage: {
      before: loadBefore.map((x) => Math.round(x * 100) / 100),
      after: loadAfter.map((x) => Math.round(x * 100) / 100),
    },
    checks,
    servers,
  });
  const limited = Object.entries(result.total.intendedBy).filter(([k]) => k.includes("rate_limited"));
  const limitedCount = limited.reduce((a, [, n]) => a + n, 0);
  if (result.total.answers && limitedCount / result.total.answers > 0.01) {
    log(
      `  note: ${limitedCount} answers were 429 rate_limited. If the app does not trust X-Forwarded-For ` +
        `(TRUST_PROXY=1), every simulated user shares one client's limits.`,
    );
  }
  return result;
}

/** Runs the scenarios in turn with the same worker threads. */
export async function runLoad(opts: LoadOptions): Promise<RunResult> {
  const workers = Array.from(
    { length: opts.workers },
    () => new Worker(new URL("./loadtest_worker.ts", import.meta.url), { type: "module" }),
  );
  const run: RunResult = {
    tool: "repolm-loadtest",
    version: 1,
    startedAt: new Date().toISOString(),
    command: `deno task loadtest ${Deno.args.join(" ")}`.trim(),
    urls: opts.urls,
    users: opts.users,
    durationSeconds: opts.durationSeconds,
    clients: opts.xff
      ? "one X-Forwarded-For address per user"
      : opts.apiKey
      ? "one API key"
      : "no X-Forwarded-For",
    cpus: navigator.hardwareConcurrency,
    scenarios: {},
  };
  try {
    for (const name of opts.scenarios) {
      run.scenarios[name] = await runScenario(name, opts, workers);
      (opts.log ?? console.log)(formatScenario(run.scenarios[name]));
    }
  } finally {
    for (const w of workers) w.terminate();
  }
  return run;
}

export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      url: { type: "string", default: "http://127.0.0.1:8000" },
      users: { type: "string", default: "100" },
      duration: { type: "string", default: "30" },
      scenario: { type: "string", default: "mixed" },
      output: { type: "string" },
      compare: { type: "string" },
      workers: { type: "string", default: "2" },
      "think-ms": { type: "string" },
      "timeout-ms": { type: "string", default: "30000" },
      "ramp-seconds": { type: "string" },
      "cluster-stats": { type: "string" },
      "no-xff": { type: "boolean", default: false },
      client: { type: "string", default: "raw" },
      "api-key": { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const urls = values.url.split(",").map((u) => u.trim().replace(/\/+$/, "")).filter(Boolean);
  for (const u of urls) {
    const host = new URL(u).hostname;
    if (host !== "127.0.0.1" && host !== "localhost" && host !== "[::1]") {
      console.error(`refusing ${u}: the load test only targets this machine (127.0.0.1)`);
      return 2;
    }
  }
  const scenarios = values.scenario === "all" ? [...SCENARIOS] : values.scenario.split(",") as Scenario[];
  for (const s of scenarios) {
    if (!SCENARIOS.includes(s)) {
      console.error(`unknown scenario ${s}; one of ${SCENARIOS.join(", ")} or all`);
      return 2;
    }
  }
  const users = Number(values.users);
  const duration = Number(values.duration);
  if (!(users > 0 && users <= 50_000 && duration > 0 && duration <= 3600)) {
    console.error("--users must be 1..50000 and --duration 1..3600 seconds");
    return 2;
  }
  const run = await runLoad({
    urls,
    users,
    durationSeconds: duration,
    scenarios,
    workers: Math.max(1, Number(values.workers)),
    thinkMs: values["think-ms"] ? Number(values["think-ms"]) : undefined,
    timeoutMs: Number(values["timeout-ms"]),
    rampSeconds: values["ramp-seconds"] ? Number(values["ramp-seconds"]) : undefined,
    xff: !values["no-xff"],
    client: values.client === "fetch" ? "fetch" : "raw",
    apiKey: values["api-key"],
    clusterStats: values["cluster-stats"],
  });
  if (values.output) {
    await Deno.writeTextFile(values.output, JSON.stringify(run, null, 2) + "\n");
    console.log(`wrote ${values.output}`);
  }
  if (values.compare) {
    const before = JSON.parse(await Deno.readTextFile(values.compare)) as RunResult;
    console.log(formatCompare(run, before));
  }
  const failing = Object.values(run.scenarios).filter((s) => s.total.failureRate > 0.05);
  for (const s of failing) {
    console.error(`${s.scenario}: failure rate ${(s.total.failureRate * 100).toFixed(2)}% is above 5%`);
  }
  return failing.length ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
