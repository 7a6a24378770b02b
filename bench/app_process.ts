/** Runs the real app as a subprocess for benchmarks and durability tests, and reads its resource use. */

export interface AppProcess {
  url: string;
  pid: number;
  kvPath: string;
  /** Peak and current resident memory in MB (VmHWM, VmRSS). */
  memory(): Promise<{ peakMb: number; rssMb: number }>;
  /** User + system CPU seconds used so far. */
  cpuSeconds(): Promise<number>;
  /** SIGKILL: no graceful shutdown (durability tests). */
  kill(): Promise<void>;
  /** SIGTERM and wait for exit; removes the KV folder if startAppProcess made it. */
  stop(): Promise<void>;
}

/** Runs `deno ARGS` as a server and waits until `readyUrl` answers 2xx (for a comparison server). */
export async function startServerProcess(
  args: string[],
  readyUrl: string,
  name: string,
): Promise<{ stop(): Promise<void> }> {
  const child = new Deno.Command(Deno.execPath(), { args, stdout: "null", stderr: "inherit" }).spawn();
  for (let i = 0;; i++) {
    try {
      const res = await fetch(readyUrl);
      await res.arrayBuffer();
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (i > 300) {
      child.kill("SIGKILL");
      await child.status;
      throw new Error(`${name} did not start`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    async stop() {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

const CLK_TCK = 100;

/** User + system CPU seconds a process (every thread) has used so far, from /proc (Linux). */
export function cpuSecondsOf(pid: number | "self"): number {
  const fields = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/**
 * The V8 flags `deno task start` runs the app with (deno.json): the heap may grow to 1.2× what
 * survived the last full collection instead of up to ~4×, and the young generation stays within
 * two 16 MB semi-spaces instead of V8's default for the machine (32 MB ones on the 24 GB machine
 * the figures come from). Both keep an ingest's peak memory near its live data, at no measured
 * cost in speed or in fan-out lag (docs/PERFORMANCE.md).
 */
export const APP_V8_FLAGS = "--heap-growing-percent=20,--max-semi-space-size=8";

/** Traffic control out of the way unless the caller sets its own limits (bench/ratelimit.ts does). */
const TRAFFIC_OFF = {
  RATE_LIMITS: "read=1000000/1m,ingest=1000000/1m,generate=1000000/1m,chat=1000000/1m",
  MAX_STREAMS_PER_CLIENT: "0",
  MAX_INGESTS_PER_CLIENT: "0",
};

/** Starts `deno run main.ts` with `env` on a free port and waits until /health answers. */
export async function startAppProcess(
  env: Record<string, string>,
  options: { kvPath?: string; port?: number } = {},
): Promise<AppProcess> {
  // a KV folder made here is this process's to remove when it stops (not when killed: durability
  // tests restart on the same file); a caller that passes kvPath owns its folder
  const ownDir = options.kvPath ? null : await Deno.makeTempDir({ prefix: "repolm-" });
  const kvPath = options.kvPath ?? `${ownDir}/repolm.kv`;
  const port = options.port ?? freePort();
  const root = new URL("../", import.meta.url).pathname;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `--v8-flags=${APP_V8_FLAGS}`, `${root}main.ts`],
    cwd: root,
    env: { LOG_LEVEL: "warn", ...TRAFFIC_OFF, ...env, KV_PATH: kvPath, PORT: String(port) },
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  let exited = false;
  const status = child.status.then(() => exited = true);
  while (true) {
    if (exited) throw new Error("the app exited during start-up (its stderr is above)");
    try {
      const res = await fetch(`${url}/health`);
      await res.body?.cancel();
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      await child.status;
      throw new Error("the app did not start within 60 s");
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    pid: child.pid,
    kvPath,
    async memory() {
      const text = await Deno.readTextFile(`/proc/${child.pid}/status`);
      const kb = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(text)?.[1] ?? 0);
      return { peakMb: kb("VmHWM") / 1024, rssMb: kb("VmRSS") / 1024 };
    },
    cpuSeconds: () => Promise.resolve(cpuSecondsOf(child.pid)),
    async kill() {
      if (!exited) child.kill("SIGKILL");
      await status;
    },
    async stop() {
      if (!exited) child.kill("SIGTERM");
      await status;
      if (ownDir) await Deno.remove(ownDir, { recursive: true }).catch(() => {});
    },
  };
}
