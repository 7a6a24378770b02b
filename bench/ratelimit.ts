/**
 * `deno task bench ratelimit [--seconds 5] [--connections 64] [--clients 1000] [--rounds 3]`
 *
 * Requests per second of a finished-artifact read (GET /api/artifacts/:id) through the whole app
 * with traffic control on — client identity, the KV rate limiter counting every request, security
 * headers, metrics — as a ratio to a bare `Deno.serve` hello world measured in the same run on
 * the same machine by the same load generator. Target: ≥ 0.5.
 *
 * For scale, the same route without any middleware (a third process on the same KV file) is
 * measured too. The servers run as subprocesses; the load generator is this process: `--connections` fetch
 * loops for `--seconds`, keep-alive. Rounds alternate hello/app so drift hits both alike; the
 * best round of each is reported. Scenarios: one hot client (every request on one KV counter)
 * and `--clients` distinct clients (X-Forwarded-For behind TRUST_PROXY=1), the viral case.
 */
import { parseArgs } from "node:util";
import { buildTarGz } from "../tests/fakes/archives.ts";
import { SAMPLE_REPO } from "../tests/model_fixtures.ts";
import { type AppProcess, freePort, startAppProcess, startServerProcess } from "./app_process.ts";

interface LoadResult {
  rps: number;
  ok: number;
  other: number;
  p50Ms: number;
  p99Ms: number;
}

/** Runs `connections` request loops against `url` for `seconds`; counts and times every answer. */
async function load(
  url: string,
  connections: number,
  seconds: number,
  headersFor: (i: number) => HeadersInit = () => ({}),
): Promise<LoadResult> {
  const latencies: number[] = [];
  let ok = 0;
  let other = 0;
  let n = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  await Promise.all(Array.from({ length: connections }, async () => {
    while (performance.now() < end) {
      const t = performance.now();
      const res = await fetch(url, { headers: headersFor(n++) });
      await res.arrayBuffer();
      latencies.push(performance.now() - t);
      if (res.status === 200) ok++;
      else other++;
    }
  }));
  const elapsed = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => Math.round(latencies[Math.floor((latencies.length - 1) * p)] * 100) / 100;
  return { rps: Math.round((ok + other) / elapsed), ok, other, p50Ms: pct(0.5), p99Ms: pct(0.99) };
}

/** A bare hello world in its own process, like the app. */
async function startHello(): Promise<{ url: string; stop(): Promise<void> }> {
  const port = freePort();
  const url = `http://127.0.0.1:${port}/`;
  const code =
    `Deno.serve({ port: ${port}, hostname: "127.0.0.1", onListen() {} }, () => new Response("hello"))`;
  return { url, ...await startServerProcess(["eval", code], url, "hello world") };
}

/**
 * The same artifact route on the same KV file, without createApp's middleware (no traffic
 * control, no security headers, no metrics): what the route itself costs. Runs in a subprocess.
 */
async function serveBare(port: number, kvPath: string): Promise<void> {
  const { Hono } = await import("hono");
  const { configFromEnv } = await import("../lib/config.ts");
  const { createLogger } = await import("../lib/log.ts");
  const { createServices } = await import("../queues/mod.ts");
  const { artifactRoutes } = await import("../routes/artifacts.ts");
  const config = configFromEnv({ KV_PATH: kvPath, LOG_LEVEL: "warn" });
  const kv = await Deno.openKv(kvPath);
  const { deps } = createServices(config, kv, { now: () => Date.now() }, createLogger("warn"), {
    version: "bench",
  });
  const app = new Hono();
  app.route("/api/artifacts", artifactRoutes(deps));
  Deno.serve({ port, hostname: "127.0.0.1", onListen() {} }, app.fetch);
}

/** Starts `serveBare` in a subprocess and waits until it answers. */
async function startBare(
  kvPath: string,
  artifactId: string,
): Promise<{ url: string; stop(): Promise<void> }> {
  const port = freePort();
  const url = `http://127.0.0.1:${port}/api/artifacts/${artifactId}`;
  const args = ["run", "-A", new URL(import.meta.url).pathname, "--serve-bare", String(port), kvPath];
  return { url, ...await startServerProcess(args, url, "the bare route") };
}

/** Uploads the sample repo, asks for its overview (offline provider) and waits until it is done. */
async function finishedArtifact(app: AppProcess): Promise<string> {
  const form = new FormData();
  form.append("file", new Blob([await buildTarGz(SAMPLE_REPO)]), "repo.tar.gz");
  const up = await fetch(`${app.url}/api/repos/upload`, { method: "POST", body: form });
  const { repo } = await up.json() as { repo: { id: string } };
  for (let i = 0; i < 200; i++) {
    const res = await fetch(`${app.url}/api/repos/${repo.id}/artifacts`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ kind: "overview" }),
    });
    const { artifact } = await res.json() as { artifact: { id: string; status: string } };
    if (artifact.status === "done") return artifact.id;
    if (artifact.status === "failed") throw new Error("the overview failed");
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error("the overview did not finish");
}

function clientHeaders(clients: number): (i: number) => HeadersInit {
  if (clients <= 1) return () => ({});
  return (i) => {
    const c = i % clients;
    return { "x-forwarded-for": `10.${(c >> 16) & 255}.${(c >> 8) & 255}.${c & 255}` };
  };
}

export async function main(args: string[]): Promise<void> {
  if (args[0] === "--serve-bare") return await serveBare(Number(args[1]), args[2]);
  const { values } = parseArgs({
    args,
    options: {
      seconds: { type: "string", default: "5" },
      connections: { type: "string", default: "64" },
      clients: { type: "string", default: "1000" },
      rounds: { type: "string", default: "3" },
    },
  });
  const seconds = Number(values.seconds);
  const connections = Number(values.connections);
  const clients = Number(values.clients);
  const rounds = Number(values.rounds);

  const hello = await startHello();
  // limits high enough that every request is admitted: each one still costs the full
  // check-and-set on its counter. Request logs off (LOG_LEVEL=warn): a log line per request would
  // measure the terminal.
  const app = await startAppProcess({
    RATE_LIMITS: "read=1000000000/1m,ingest=100/1m,generate=100/1m,chat=100/1m",
    TRUST_PROXY: "1",
    LOG_LEVEL: "warn",
    QUEUES: "off",
  });
  let bare: { url: string; stop(): Promise<void> } | undefined;
  try {
    const artifactId = await finishedArtifact(app);
    bare = await startBare(app.kvPath, artifactId);
    const artifactUrl = `${app.url}/api/artifacts/${artifactId}`;
    const probe = await fetch(artifactUrl);
    const policy = probe.headers.get("ratelimit-policy");
    await probe.arrayBuffer();
    if (!policy) throw new Error("no RateLimit-Policy header: is rate limiting on?");
    console.log(`# ${Deno.build.target}, ${navigator.hardwareConcurrency} cores, deno ${Deno.version.deno}`);
    console.log(`# ${connections} connections, ${seconds} s per measurement, best of ${rounds} rounds`);
    console.log(`# app route: GET /api/artifacts/:id (finished overview), ${policy}`);

    await load(hello.url, connections, 1);
    await load(bare.url, connections, 1);
    await load(artifactUrl, connections, 1);
    const best: Record<string, LoadResult> = {};
    const keep = (name: string, r: LoadResult) => {
      if (!best[name] || r.rps > best[name].rps) best[name] = r;
    };
    for (let round = 0; round < rounds; round++) {
      keep("hello", await load(hello.url, connections, seconds));
      keep("same route, no middleware", await load(bare.url, connections, seconds));
      keep("app, one client", await load(artifactUrl, connections, seconds));
      keep(`app, ${clients} clients`, await load(artifactUrl, connections, seconds, clientHeaders(clients)));
    }
    const base = best.hello.rps;
    console.log("\n| server | req/s | ratio to hello | p50 ms | p99 ms | non-200 |");
    console.log("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (const [name, r] of Object.entries(best)) {
      console.log(
        `| ${name} | ${r.rps} | ${(r.rps / base).toFixed(2)} | ${r.p50Ms} | ${r.p99Ms} | ${r.other} |`,
      );
    }
    const mem = await app.memory();
    console.log(`\napp RSS ${mem.rssMb.toFixed(0)} MB (peak ${mem.peakMb.toFixed(0)} MB)`);
  } finally {
    await bare?.stop();
    await app.stop();
    await hello.stop();
  }
}

if (import.meta.main) await main(Deno.args);
