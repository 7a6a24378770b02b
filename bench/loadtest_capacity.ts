/**
 * `deno task bench loadtest_capacity [--only streams,kv,watch,jobs] [--streams 1000,2000,5000,10000]
 *  [--jobs 120]`
 *
 * Measures where each limit of the design sits on this machine, for docs/SCALING.md:
 * - streams: RSS of one app process per open SSE stream (idle viewers of a live artifact) and the
 *   CPU they cost while idle;
 * - kv: commits per second to a local KV file — one process, one process with 32 commits in
 *   flight, 50 keys per commit (as the rate limiter batches), and two processes writing at once;
 * - watch: how long a KV write takes to reach a waiter in the same process (kv.watch) and in
 *   another process on the same file (lib/kv_watch.ts's slow poll, 250 ms);
 * - jobs: generate jobs per second through the KV job system with the offline provider, on one
 *   instance and on two instances sharing the file.
 */
import { parseArgs } from "node:util";
import { freePort, startAppProcess } from "./app_process.ts";
import { distribution } from "./loadtest_stats.ts";
import { buildTarGz } from "../tests/fakes/archives.ts";
import { startFakeOpenAI } from "../tests/fakes/openai.ts";
import { SAMPLE_REPO } from "../tests/model_fixtures.ts";
import { watchKeys } from "../lib/kv_watch.ts";
import { commitWithRetry } from "../lib/kv_util.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const encoder = new TextEncoder();

async function upload(url: string): Promise<string> {
  const form = new FormData();
  form.append("file", new Blob([await buildTarGz(SAMPLE_REPO)]), "repo.tar.gz");
  const res = await fetch(`${url}/api/repos/upload`, { method: "POST", body: form });
  const body = await res.json();
  if (res.status !== 200) throw new Error(`upload: ${res.status} ${JSON.stringify(body)}`);
  return body.repo.id;
}

async function post(url: string, body: unknown) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

/** RSS per open stream and idle CPU. */
async function streams(steps: number[]) {
  const llm = await startFakeOpenAI({ apiKey: "cap", tokens: 10, delayMs: 3_600_000 });
  const app = await startAppProcess({
    OPENAI_API_KEY: "cap",
    OPENAI_BASE_URL: llm.baseUrl,
    LLM_MODEL: "fake-model",
    LLM_TIMEOUT: "1h",
    MAX_STREAMS_PER_PROCESS: "0",
    QUOTA_DAILY_TOKENS: "0",
    QUOTA_GLOBAL_DAILY_TOKENS: "0",
  });
  const conns: Deno.TcpConn[] = [];
  try {
    const repoId = await upload(app.url);
    const asked = await post(`${app.url}/api/repos/${repoId}/artifacts`, { kind: "overview" });
    const path = `/api/artifacts/${asked.body.artifact.id}/stream`;
    const port = Number(new URL(app.url).port);
    // warm the code paths, then the baseline
    for (let i = 0; i < 50; i++) await (await fetch(`${app.url}/api/repos/${repoId}`)).body?.cancel();
    await sleep(2000);
    const base = (await app.memory()).rssMb;
    console.log(`streams: baseline RSS ${base.toFixed(1)} MB`);
    const request = encoder.encode(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`,
    );
    for (const n of steps) {
      while (conns.length < n) {
        const batch = await Promise.all(
          Array.from({ length: Math.min(200, n - conns.length) }, async () => {
            const c = await Deno.connect({ hostname: "127.0.0.1", port });
            await c.write(request);
            // keep reading (headers, then a ping every 10 s) so nothing backs up
            (async () => {
              const buf = new Uint8Array(1024);
              while ((await c.read(buf).catch(() => null)) !== null) { /* drain */ }
            })();
            return c;
          }),
        );
        conns.push(...batch);
      }
      await sleep(3000);
      const rss = (await app.memory()).rssMb;
      const metrics = await (await fetch(`${app.url}/metrics`)).text();
      const open = Number(/^repolm_open_streams (\d+)/m.exec(metrics)?.[1] ?? NaN);
      console.log(
        `  ${n} streams open (server counts ${open}): RSS ${rss.toFixed(1)} MB, ` +
          `${(((rss - base) * 1024) / n).toFixed(1)} KB per stream`,
      );
    }
    const cpu0 = await app.cpuSeconds();
    await sleep(10_000);
    const cpu = (await app.cpuSeconds()) - cpu0;
    console.log(
      `  idle: ${conns.length} open streams for 10 s used ${cpu.toFixed(2)} CPU s (${
        (cpu * 10).toFixed(1)
      }% of a core)`,
    );
  } finally {
    for (const c of conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await app.stop();
    await llm.close();
  }
}

/** The writer a child process runs for the two-process KV measurement. */
async function writer(kvPath: string, seconds: number, tag: string) {
  const kv = await Deno.openKv(kvPath);
  let commits = 0;
  let locked = 0;
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    await commitWithRetry(async () => {
      try {
        return await kv.atomic().set(["w", tag, commits % 100], Date.now()).commit();
      } catch (e) {
        locked++;
        throw e;
      }
    }, 50);
    commits++;
  }
  kv.close();
  console.log(JSON.stringify({ commits, locked }));
}

async function kvRates() {
  const dir = await Deno.makeTempDir({ prefix: "repolm-cap-" });
  const kvPath = `${dir}/kv.sqlite`;
  const kv = await Deno.openKv(kvPath);
  const seconds = 3;
  const rate = async (label: string, inFlight: number, keysPerCommit: number) => {
    let commits = 0;
    const end = Date.now() + seconds * 1000;
    await Promise.all(Array.from({ length: inFlight }, async (_, w) => {
      while (Date.now() < end) {
        const atomic = kv.atomic();
        for (let k = 0; k < keysPerCommit; k++) {
          atomic.set(["c", w, (commits * keysPerCommit + k) % 5000], commits);
        }
        await atomic.commit();
        commits++;
      }
    }));
    console.log(
      `  ${label}: ${Math.round(commits / seconds)} commits/s, ${
        Math.round((commits * keysPerCommit) / seconds)
      } keys/s`,
    );
  };
  console.log(`kv: local file, ${seconds} s each`);
  await rate("one process, one commit at a time, 1 key", 1, 1);
  await rate("one process, 32 commits in flight, 1 key each", 32, 1);
  await rate("one process, one commit at a time, 50 keys (rate-limiter batch)", 1, 50);
  kv.close();
  const self = new URL(import.meta.url).pathname;
  const children = ["a", "b"].map((tag) =>
    new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        self,
        "--role",
        "writer",
        "--kv",
        kvPath,
        "--seconds",
        String(seconds),
        "--tag",
        tag,
      ],
      stdout: "piped",
      stderr: "inherit",
    }).output()
  );
  const outs = (await Promise.all(children)).map((o) => JSON.parse(new TextDecoder().decode(o.stdout)));
  const total = outs.reduce((n, o) => n + o.commits, 0);
  console.log(
    `  two processes, one commit at a time each: ${Math.round(total / seconds)} commits/s in all ` +
      `(${outs.map((o) => o.commits).join(" + ")}; "database is locked" retries: ${
        outs.map((o) => o.locked).join(" + ")
      })`,
  );
  await Deno.remove(dir, { recursive: true });
}

/** The child that writes timestamps for the cross-process watch measurement. */
async function stamper(kvPath: string, count: number) {
  const kv = await Deno.openKv(kvPath);
  for (let i = 0; i < count; i++) {
    await sleep(150 + Math.random() * 250);
    await commitWithRetry(() => kv.atomic().set(["probe"], Date.now()).commit());
  }
  kv.close();
}

async function watchLatency(samples: number) {
  const dir = await Deno.makeTempDir({ prefix: "repolm-cap-" });
  const kvPath = `${dir}/kv.sqlite`;
  const kv = await Deno.openKv(kvPath);
  await kv.set(["probe"], 0);
  const measure = async (label: string, write: () => Promise<unknown>) => {
    const lags: number[] = [];
    const abort = new AbortController();
    const seen = (async () => {
      let first = true;
      for await (const [e] of watchKeys<number>(kv, [["probe"]], abort.signal, 250)) {
        if (first) {
          first = false;
          continue;
        }
        lags.push(Date.now() - (e.value ?? 0));
        if (lags.length >= samples) break;
      }
    })();
    await write();
    await Promise.race([seen, sleep(samples * 1000)]);
    abort.abort();
    const d = distribution(lags);
    console.log(`  ${label}: p50 ${d?.p50} ms, p99 ${d?.p99} ms, max ${d?.max} ms (${lags.length} writes)`);
  };
  console.log("watch: a KV write until a waiter sees it (lib/kv_watch.ts, poll 250 ms)");
  await measure("same process (kv.watch wakes)", async () => {
    for (let i = 0; i < samples; i++) {
      await sleep(150 + Math.random() * 250);
      await kv.set(["probe"], Date.now());
    }
  });
  const self = new URL(import.meta.url).pathname;
  await measure("another process on the same file (slow poll)", () =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", self, "--role", "stamper", "--kv", kvPath, "--count", String(samples)],
      stdout: "inherit",
      stderr: "inherit",
    }).output());
  kv.close();
  await Deno.remove(dir, { recursive: true });
}

/** Generate jobs per second with the offline provider, on `instances` processes sharing a KV file. */
async function jobs(count: number, instances: number) {
  const dir = await Deno.makeTempDir({ prefix: "repolm-cap-" });
  const kvPath = `${dir}/repolm.kv`;
  const env = {
    SHED_QUEUE_DEPTH: "0",
    SHED_LOOP_DELAY: "0ms",
    QUOTA_DAILY_TOKENS: "0",
    QUOTA_GLOBAL_DAILY_TOKENS: "0",
  };
  const apps = [await startAppProcess(env, { kvPath, port: freePort() })];
  for (let i = 1; i < instances; i++) apps.push(await startAppProcess(env, { kvPath, port: freePort() }));
  try {
    const repoId = await upload(apps[0].url);
    const cpu0 = await Promise.all(apps.map((a) => a.cpuSeconds()));
    const t0 = performance.now();
    const ids: string[] = [];
    await Promise.all(Array.from({ length: count }, async (_, i) => {
      const res = await post(`${apps[i % apps.length].url}/api/repos/${repoId}/artifacts`, {
        kind: "concepts",
        concept: `concept ${i}`,
      });
      if (res.status !== 202 && res.status !== 200) {
        throw new Error(`artifact: ${res.status} ${JSON.stringify(res.body)}`);
      }
      ids.push(res.body.artifact.id);
    }));
    const queued = performance.now() - t0;
    const pending = new Set(ids);
    while (pending.size) {
      for (const id of [...pending]) {
        const a = await (await fetch(`${apps[0].url}/api/artifacts/${id}`)).json();
        if (a.status === "done" || a.status === "failed") pending.delete(id);
      }
      if (pending.size) await sleep(200);
      if (performance.now() - t0 > 600_000) throw new Error("jobs did not finish in 10 minutes");
    }
    const seconds = (performance.now() - t0) / 1000;
    const cpu = (await Promise.all(apps.map((a) => a.cpuSeconds()))).map((c, i) => c - cpu0[i]);
    console.log(
      `  ${instances} instance(s): ${count} jobs queued in ${(queued / 1000).toFixed(1)} s, all done after ` +
        `${seconds.toFixed(1)} s: ${(count / seconds).toFixed(1)} jobs/s (CPU ${
          cpu.map((c) => c.toFixed(1)).join(" + ")
        } s)`,
    );
  } finally {
    await Promise.all(apps.map((a) => a.stop()));
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      only: { type: "string", default: "streams,kv,watch,jobs" },
      streams: { type: "string", default: "1000,2000,5000,10000" },
      jobs: { type: "string", default: "120" },
      role: { type: "string" },
      kv: { type: "string" },
      seconds: { type: "string", default: "3" },
      tag: { type: "string", default: "a" },
      count: { type: "string", default: "20" },
    },
  });
  if (values.role === "writer") return await writer(values.kv!, Number(values.seconds), values.tag);
  if (values.role === "stamper") return await stamper(values.kv!, Number(values.count));
  const only = new Set(values.only.split(","));
  console.log(
    `load average ${
      Deno.loadavg().map((x) => x.toFixed(2)).join(" ")
    }, ${navigator.hardwareConcurrency} CPUs`,
  );
  if (only.has("streams")) await streams(values.streams.split(",").map(Number));
  if (only.has("kv")) await kvRates();
  if (only.has("watch")) await watchLatency(20);
  if (only.has("jobs")) {
    console.log("jobs: offline generate jobs (WORKER_CONCURRENCY 4 per instance)");
    await jobs(Number(values.jobs), 1);
    await jobs(Number(values.jobs), 2);
  }
  console.log(`load average ${Deno.loadavg().map((x) => x.toFixed(2)).join(" ")}`);
}

if (import.meta.main) await main(Deno.args);
