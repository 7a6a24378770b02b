/**
 * `deno task cluster --instances N [--port 8000] [--fakes] [--kv PATH] [--llm-tokens 400]
 *  [--llm-delay-ms 20] [--stats-port 0]`
 *
 * Starts N copies of main.ts on ONE Deno KV file, on consecutive ports from --port, for
 * multi-instance runs on one machine (the self-hosted scale-out, with a local file instead of a
 * denokv server). With --fakes it also starts the fake OpenAI-compatible server and the fake
 * GitHub (tests/fakes) in this process and points every instance at them. It prints the URLs,
 * then a stats URL (`GET` → each instance's RSS and CPU, the fake model's call counts; `POST
 * /llm` with `{"fail": "429"|"hang"|…|null, "faults": [...], "delayMs": N}` changes the fake's
 * behaviour for hand-made chaos). Ctrl-C or SIGTERM stops everything: the instances get SIGTERM
 * (and SIGKILL after 10 s), the fakes close, and a KV file it created is deleted.
 *
 * The instances' environment is this process's, plus: TRUST_PROXY=1 (so the load test's
 * simulated users, each with its own X-Forwarded-For, are distinct clients with the normal
 * per-client limits) and LOG_LEVEL=warn, unless those are set already. Set anything else (e.g.
 * RATE_LIMITS, MAX_STREAMS_PER_PROCESS) in the environment of `deno task cluster`.
 */
import { parseArgs } from "node:util";
import { APP_V8_FLAGS } from "../bench/app_process.ts";
import { syntheticRepoStream } from "../tests/fakes/archives.ts";
import { type FakeGitHub, startFakeGitHub } from "../tests/fakes/github.ts";
import { type FakeOpenAI, type Fault, type FaultMode, startFakeOpenAI } from "../tests/fakes/openai.ts";
import { SAMPLE_REPO } from "../tests/model_fixtures.ts";

export interface ClusterOptions {
  instances: number;
  port: number;
  fakes: boolean;
  /** KV file to share; a temporary one (deleted at stop) when absent. */
  kvPath?: string;
  llmTokens?: number;
  llmDelayMs?: number;
  statsPort?: number;
  /** Extra environment for the instances (over this process's). */
  env?: Record<string, string>;
  /** Where instance output goes (default: this process's). */
  quiet?: boolean;
}

export interface Instance {
  url: string;
  pid: number;
  child: Deno.ChildProcess;
  exited: boolean;
}

export interface Cluster {
  urls: string[];
  statsUrl: string;
  kvPath: string;
  instances: Instance[];
  llm?: FakeOpenAI;
  github?: FakeGitHub;
  stop(): Promise<void>;
}

const CLK_TCK = 100;

async function processStats(pid: number) {
  try {
    const status = await Deno.readTextFile(`/proc/${pid}/status`);
    const kb = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
    const fields = (await Deno.readTextFile(`/proc/${pid}/stat`)).split(") ")[1].split(" ");
    return {
      rssMb: kb("VmRSS") / 1024,
      peakMb: kb("VmHWM") / 1024,
      cpuSeconds: (Number(fields[11]) + Number(fields[12])) / CLK_TCK,
    };
  } catch {
    return null;
  }
}

async function waitHealthy(url: string, instance: Instance, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (instance.exited) throw new Error(`${url} exited while starting`);
    try {
      const res = await fetch(`${url}/health`);
      await res.body?.cancel();
      if (res.ok) return;
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not answer /health within ${timeoutMs / 1000} s`);
}

/** Starts the cluster; `stop()` ends every process it started. */
export async function startCluster(opts: ClusterOptions): Promise<Cluster> {
  const root = new URL("../", import.meta.url).pathname;
  let tempDir: string | undefined;
  let kvPath = opts.kvPath;
  if (!kvPath) {
    tempDir = await Deno.makeTempDir({ prefix: "repolm-cluster-" });
    kvPath = `${tempDir}/repolm.kv`;
  }
  const env: Record<string, string> = {
    TRUST_PROXY: "1",
    LOG_LEVEL: "warn",
    ...Deno.env.toObject(),
    ...opts.env,
    KV_PATH: kvPath,
  };
  let llm: FakeOpenAI | undefined;
  let github: FakeGitHub | undefined;
  if (opts.fakes) {
    llm = await startFakeOpenAI({
      apiKey: "cluster-fake",
      tokens: opts.llmTokens ?? 400,
      delayMs: opts.llmDelayMs ?? 20,
    });
    github = await startFakeGitHub();
    github.addRepo({ owner: "acme", name: "demo", archive: SAMPLE_REPO });
    github.addRepo({
      owner: "acme",
      name: "synthetic",
      archive: ({ folder }) =>
        syntheticRepoStream({ files: 500, bytesPerFile: 2000, prefix: folder, seed: 1 }),
    });
    Object.assign(env, {
      OPENAI_API_KEY: "cluster-fake",
      OPENAI_BASE_URL: llm.baseUrl,
      LLM_MODEL: "fake-model",
      GITHUB_API_URL: github.apiUrl,
      GITHUB_CODELOAD_URL: github.codeloadUrl,
    });
  }
  const instances: Instance[] = [];
  const start = (port: number): Instance => {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `--v8-flags=${APP_V8_FLAGS}`, `${root}main.ts`],
      cwd: root,
      env: { ...env, PORT: String(port) },
      stdin: "null",
      stdout: opts.quiet ? "null" : "inherit",
      stderr: opts.quiet ? "null" : "inherit",
    }).spawn();
    const instance: Instance = { url: `http://127.0.0.1:${port}`, pid: child.pid, child, exited: false };
    child.status.then((s) => {
      instance.exited = true;
      if (!stopping) console.error(`instance ${instance.url} (pid ${child.pid}) exited with code ${s.code}`);
    });
    instances.push(instance);
    return instance;
  };
  let stopping = false;
  let stats: Deno.HttpServer<Deno.NetAddr> | undefined;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await Promise.all(instances.map(async (i) => {
      if (!i.exited) {
        try {
          i.child.kill("SIGTERM");
        } catch { /* already gone */ }
      }
      const timer = setTimeout(() => {
        try {
          if (!i.exited) i.child.kill("SIGKILL");
        } catch { /* already gone */ }
      }, 10_000);
      await i.child.status;
      clearTimeout(timer);
    }));
    await stats?.shutdown();
    await llm?.close();
    await github?.close();
    if (tempDir) await Deno.remove(tempDir, { recursive: true }).catch(() => {});
  };
  try {
    // the first creates the KV file; the others open it once it serves
    const first = start(opts.port);
    await waitHealthy(first.url, first);
    const rest = Array.from({ length: opts.instances - 1 }, (_, i) => start(opts.port + 1 + i));
    await Promise.all(rest.map((i) => waitHealthy(i.url, i)));
    stats = Deno.serve({ hostname: "127.0.0.1", port: opts.statsPort ?? 0, onListen() {} }, async (req) => {
      const pathname = new URL(req.url).pathname.replace(/\/+/g, "/");
      if (req.method === "POST" && pathname === "/llm" && llm) {
        const body = await req.json().catch(() => ({})) as {
          fail?: FaultMode | null;
          faults?: Fault[];
          delayMs?: number;
          tokens?: number;
        };
        if (body.faults) llm.setFaults(body.faults);
        const partial: Record<string, unknown> = {};
        if ("fail" in body) partial.fail = body.fail ?? undefined;
        if (body.delayMs !== undefined) partial.delayMs = body.delayMs;
        if (body.tokens !== undefined) partial.tokens = body.tokens;
        llm.setOptions(partial);
        return Response.json({ ok: true });
      }
      return Response.json({
        instances: await Promise.all(
          instances.map(async (i) => ({
            url: i.url,
            pid: i.pid,
            exited: i.exited,
            ...await processStats(i.pid),
          })),
        ),
        ...(llm
          ? { llm: { chat: llm.calls.chat, speech: llm.calls.speech, aborted: llm.calls.aborted } }
          : {}),
        ...(github ? { github: { api: github.requests.api, downloads: github.requests.downloads } } : {}),
      });
    });
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    urls: instances.map((i) => i.url),
    statsUrl: `http://127.0.0.1:${stats.addr.port}/`,
    kvPath,
    instances,
    llm,
    github,
    stop,
  };
}

export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      instances: { type: "string", default: "2" },
      port: { type: "string", default: "8000" },
      fakes: { type: "boolean", default: false },
      kv: { type: "string" },
      "llm-tokens": { type: "string", default: "400" },
      "llm-delay-ms": { type: "string", default: "20" },
      "stats-port": { type: "string", default: "0" },
    },
  });
  const instances = Number(values.instances);
  if (!Number.isInteger(instances) || instances < 1 || instances > 32) {
    console.error("--instances must be 1..32");
    Deno.exit(2);
  }
  const cluster = await startCluster({
    instances,
    port: Number(values.port),
    fakes: values.fakes,
    kvPath: values.kv,
    llmTokens: Number(values["llm-tokens"]),
    llmDelayMs: Number(values["llm-delay-ms"]),
    statsPort: Number(values["stats-port"]),
  });
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${signal}: stopping ${cluster.instances.length} instances …`);
    await cluster.stop();
    console.log("stopped");
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", () => shutdown("SIGINT"));
  Deno.addSignalListener("SIGTERM", () => shutdown("SIGTERM"));
  console.log(`KV file: ${cluster.kvPath}`);
  for (const url of cluster.urls) console.log(`instance: ${url}`);
  if (cluster.llm) console.log(`fake OpenAI: ${cluster.llm.baseUrl}`);
  if (cluster.github) {
    console.log(`fake GitHub: ${cluster.github.apiUrl} (repos acme/demo, acme/synthetic)`);
  }
  console.log(`stats: ${cluster.statsUrl}`);
  console.log(`URLS=${cluster.urls.join(",")}`);
  console.log("Ctrl-C stops everything.");
}

if (import.meta.main) await main(Deno.args);
