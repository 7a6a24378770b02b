/**
 * `deno task bench fanout [--viewers 2000] [--instances 1] [--tokens 1000] [--delay-ms 20]
 *   [--idle 1000] [--idle-seconds 10]`
 *
 * N viewers of one new artifact produced by the fake OpenAI server at ~50 tokens/s: model calls,
 * delivery lag from KV write to client (p50/p99), server RSS and CPU; then, on a fresh app
 * process, the CPU used by idle open streams. The app runs as a subprocess on a KV file (with `--instances 2`, two processes
 * on the same file, each taking half the viewers, as behind a load balancer); viewers are raw
 * TCP connections so the client side stays cheap, and they live in two Worker threads
 * (fanout_viewers.ts) so that this thread's clock is not held up by them. Lag: this thread polls the same KV file every 5 ms
 * and notes when each batch became visible; a viewer's lag for a batch is its receive time minus
 * that moment (only for batches written after the viewer connected).
 */
import { parseArgs } from "node:util";
import { buildTarGz } from "../tests/fakes/archives.ts";
import { startFakeOpenAI } from "../tests/fakes/openai.ts";
import { SAMPLE_REPO } from "../tests/model_fixtures.ts";
import { type AppProcess, startAppProcess } from "./app_process.ts";
import { keys } from "../lib/keys.ts";
import type { ArtifactRecord } from "../lib/artifacts.ts";

const now = () => performance.timeOrigin + performance.now();

/** A share of the viewers, held by a Worker thread (see fanout_viewers.ts). */
class ViewerGroup {
  #worker = new Worker(new URL("./fanout_viewers.ts", import.meta.url), { type: "module" });
  #waiting = new Map<string, (data: Record<string, unknown>) => void>();
  readonly ended: Promise<unknown>;

  constructor() {
    this.#worker.onmessage = (e) => this.#waiting.get(e.data.op)?.(e.data);
    this.ended = this.#next("ended");
  }

  #next(op: string): Promise<Record<string, unknown>> {
    return new Promise((resolve) => this.#waiting.set(op, resolve));
  }

  async open(port: number, path: string, count: number): Promise<void> {
    const opened = this.#next("opened");
    this.#worker.postMessage({ op: "open", port, path, count });
    await opened;
  }

  async results(content: string) {
    const done = this.#next("results");
    this.#worker.postMessage({ op: "finish", content });
    return await done as {
      identical: number;
      viewers: { connectedAt: number; received: [number, number][] }[];
    };
  }

  async close(): Promise<void> {
    const closed = this.#next("closed");
    this.#worker.postMessage({ op: "close" });
    await closed;
    this.#worker.terminate();
  }
}

/** Opens `count` viewers split over two Worker threads, each thread's share spread over `ports`. */
async function openGroups(ports: number[], path: string, count: number): Promise<ViewerGroup[]> {
  const shares = ports.length === 1 ? [ports[0], ports[0]] : ports;
  const groups = shares.map(() => new ViewerGroup());
  await Promise.all(groups.map((g, i) => {
    const share = Math.floor(count / groups.length) + (i < count % groups.length ? 1 : 0);
    return g.open(shares[i], path, share);
  }));
  return groups;
}

/**
 * Waits (up to 30 s) until the app uses under `share` of a core for three seconds running, so that
 * the idle figure is not the arrival of the idle streams themselves.
 */
async function settle(cpuSeconds: () => Promise<number>, share: number): Promise<void> {
  for (let i = 0, quiet = 0; i < 30 && quiet < 3; i++) {
    const before = await cpuSeconds();
    await new Promise((r) => setTimeout(r, 1000));
    quiet = (await cpuSeconds()) - before < share ? quiet + 1 : 0;
  }
}

/** User + system CPU seconds this process (viewers' threads included) has used. */
function ownCpuSeconds(): number {
  const fields = Deno.readTextFileSync("/proc/self/stat").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function percentile(values: number[], p: number): number {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function postJson(url: string, body: unknown) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

/** Notes when each text batch of an artifact becomes visible in KV. */
function watchBatches(kvPath: string, id: string) {
  const seen = new Map<number, number>();
  let stop = false;
  const done = (async () => {
    const kv = await Deno.openKv(kvPath);
    let last = 0;
    while (!stop) {
      const rec = (await kv.get<ArtifactRecord>(keys.artifact(id))).value;
      const at = now();
      if (rec) {
        for (let s = last + 1; s <= rec.textSeq; s++) seen.set(s, at);
        last = Math.max(last, rec.textSeq);
        if (rec.status === "done" || rec.status === "failed") break;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    kv.close();
  })();
  return { seen, stop: async () => (stop = true, await done) };
}

async function uploadRepo(app: AppProcess): Promise<string> {
  const form = new FormData();
  form.append("file", new Blob([await buildTarGz(SAMPLE_REPO)]), "repo.tar.gz");
  const res = await fetch(`${app.url}/api/repos/upload`, { method: "POST", body: form });
  const body = await res.json();
  if (res.status !== 200) throw new Error(`upload failed: ${JSON.stringify(body)}`);
  return body.repo.id;
}

export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      viewers: { type: "string", default: "2000" },
      instances: { type: "string", default: "1" },
      tokens: { type: "string", default: "1000" },
      "delay-ms": { type: "string", default: "20" },
      idle: { type: "string", default: "1000" },
      "idle-seconds": { type: "string", default: "10" },
    },
  });
  const viewersWanted = Number(values.viewers);
  const llm = await startFakeOpenAI({
    apiKey: "bench",
    tokens: Number(values.tokens),
    delayMs: Number(values["delay-ms"]),
  });
  const env = {
    OPENAI_API_KEY: "bench",
    OPENAI_BASE_URL: llm.baseUrl,
    LLM_MODEL: "fake-model",
    RATE_LIMITS: "read=100000000/1m,generate=100000/1m,ingest=1000/1m,chat=1000/1m",
    MAX_STREAMS_PER_CLIENT: "0",
    MAX_STREAMS_PER_PROCESS: "0",
  };
  const app = await startAppProcess(env);
  const apps = [app];
  while (apps.length < Number(values.instances)) {
    apps.push(await startAppProcess(env, { kvPath: app.kvPath }));
  }
  const ports = apps.map((a) => Number(new URL(a.url).port));
  const cpuSeconds = async () => (await Promise.all(apps.map((a) => a.cpuSeconds()))).reduce((x, y) => x + y);
  try {
    const repoId = await uploadRepo(app);
    const cpu0 = await cpuSeconds();
    const clientCpu0 = ownCpuSeconds();
    const t0 = now();
    const asked = await postJson(`${app.url}/api/repos/${repoId}/artifacts`, { kind: "overview" });
    const id = asked.body.artifact.id as string;
    const batches = watchBatches(app.kvPath, id);
    const groups = await openGroups(ports, `/api/artifacts/${id}/stream`, viewersWanted);
    const allConnected = now();
    const opened = allConnected - t0;
    await Promise.all(groups.map((g) => g.ended));
    const elapsed = (now() - t0) / 1000;
    await batches.stop();
    const cpu = (await cpuSeconds()) - cpu0;
    const clientCpu = ownCpuSeconds() - clientCpu0;
    const peaks = await Promise.all(apps.map(async (a) => (await a.memory()).peakMb));
    const content = (await (await fetch(`${app.url}/api/artifacts/${id}`)).json()).content as string;
    let identical = 0;
    let viewerCount = 0;
    const lags: number[] = [];
    const steadyLags: number[] = [];
    for (const group of groups) {
      const results = await group.results(content);
      await group.close();
      identical += results.identical;
      viewerCount += results.viewers.length;
      for (const v of results.viewers) {
        for (const [seq, at] of v.received) {
          const written = batches.seen.get(seq);
          if (written === undefined || written <= v.connectedAt) continue;
          lags.push(at - written);
          if (written > allConnected) steadyLags.push(at - written);
        }
      }
    }
    console.log(
      `fanout: ${viewersWanted} viewers on ${apps.length} process(es), ${values.tokens} tokens at ${
        values["delay-ms"]
      } ms/token`,
    );
    console.log(`  model calls: ${llm.calls.chat}`);
    console.log(`  viewers with the full, identical text: ${identical}/${viewerCount}`);
    console.log(
      `  all viewers connected after ${(opened / 1000).toFixed(1)} s; all done after ${elapsed.toFixed(1)} s`,
    );
    const lagLine = (xs: number[]) =>
      `p50 ${percentile(xs, 50).toFixed(0)} ms, p99 ${
        percentile(xs, 99).toFixed(0)
      } ms (${xs.length} samples)`;
    console.log(`  delivery lag KV write → client, whole run: ${lagLine(lags)}`);
    console.log(`  delivery lag once every viewer was connected: ${lagLine(steadyLags)}`);
    const total = peaks.reduce((x, y) => x + y);
    const each = peaks.length > 1 ? ` (${peaks.map((p) => p.toFixed(0)).join(" + ")} MB)` : "";
    console.log(
      `  server: peak RSS ${total.toFixed(0)} MB${each}, CPU ${cpu.toFixed(1)} s over ${
        elapsed.toFixed(1)
      } s (${(100 * cpu / elapsed).toFixed(0)}% of a core); this benchmark's viewers and fake model: CPU ${
        clientCpu.toFixed(1)
      } s (${(100 * clientCpu / elapsed).toFixed(0)}%)`,
    );
  } finally {
    // the first process made the KV folder the others share: it stops (and removes it) last
    for (const a of [...apps].reverse()) await a.stop();
  }
  try {
    llm.setOptions({ delayMs: 600_000 });
    await measureIdle(env, Number(values.idle), Number(values["idle-seconds"]));
  } finally {
    await llm.close();
  }
}

/**
 * The CPU of `count` open streams of an artifact whose model is silent, over `seconds`, on a
 * fresh app process: what idle streams cost, not the tail of a fan-out (a process that just closed
 * 10,000 connections spends ~1 % of a core for a while collecting their garbage).
 */
async function measureIdle(env: Record<string, string>, count: number, seconds: number): Promise<void> {
  const app = await startAppProcess(env);
  const cpuSeconds = () => app.cpuSeconds();
  try {
    const repoId = await uploadRepo(app);
    const slow = await postJson(`${app.url}/api/repos/${repoId}/artifacts`, { kind: "slides" });
    const port = Number(new URL(app.url).port);
    const idle = await openGroups([port], `/api/artifacts/${slow.body.artifact.id}/stream`, count);
    await settle(cpuSeconds, 0.03);
    const cpu0 = await cpuSeconds();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const cpu = (await cpuSeconds()) - cpu0;
    console.log(
      `  idle (a fresh process): ${count} open streams for ${seconds} s used ${cpu.toFixed(2)} CPU s (${
        (100 * cpu / seconds).toFixed(2)
      }% of a core)`,
    );
    await Promise.all(idle.map((g) => g.close()));
  } finally {
    await app.stop();
  }
}

if (import.meta.main) await main(Deno.args);
