/**
 * The composition root: configuration parsed once, KV opened once, dependencies built and passed
 * down, workers started, and a graceful shutdown on SIGINT/SIGTERM.
 */
import { systemClock } from "./lib/clock.ts";
import { configFromEnv } from "./lib/config.ts";
import { createLogger } from "./lib/log.ts";
import { endAllStreams } from "./lib/sse.ts";
import { loopDelay } from "./lib/shedding.ts";
import { sweepExpiredRepos } from "./lib/repos.ts";
import { sweepAbandonedUploads } from "./lib/upload.ts";
import { createServices } from "./queues/mod.ts";
import { createApp } from "./routes/mod.ts";
import denoJson from "./deno.json" with { type: "json" };

const SWEEP_EVERY_MS = 5 * 60_000;
/** How long a shutdown waits for requests still running (an upload), besides the jobs' own grace. */
const SHUTDOWN_REQUESTS_MS = 20_000;

/**
 * Deno Deploy has no Queues and puts idle isolates to sleep: a cron tick sweeps and claims the jobs
 * that are due or whose worker died, so queued work never waits for the next request. Deploy finds
 * crons only at a module's top level, before the server starts; `maintain` is set on Deploy once
 * the services exist (elsewhere the claim loop and the sweep timer do this work).
 */
let maintain: (() => Promise<void>) | null = null;
Deno.cron("repolm maintenance", "* * * * *", () => maintain?.() ?? Promise.resolve());

async function main() {
  let config;
  try {
    config = configFromEnv(Deno.env.toObject());
  } catch (e) {
    console.error((e as Error).message);
    Deno.exit(2);
  }
  const log = createLogger(config.logLevel);
  if (config.kvPath && config.kvPath !== ":memory:" && !config.kvPath.includes("://")) {
    const dir = config.kvPath.replace(/[^/]*$/, "");
    if (dir) await Deno.mkdir(dir, { recursive: true });
  }
  const kv = await Deno.openKv(config.kvPath);
  const clock = systemClock;
  const { deps, worker } = createServices(config, kv, clock, log, { version: denoJson.version });
  worker.start();
  loopDelay.start();

  const sweep = async () => {
    try {
      const repos = await sweepExpiredRepos(kv, clock);
      const uploads = await sweepAbandonedUploads(kv, clock);
      if (repos || uploads) log.info("swept", { repos, uploads });
    } catch (e) {
      log.error("sweep failed", { error: e });
    }
  };
  const sweeper = setInterval(sweep, SWEEP_EVERY_MS);
  sweep();
  if (config.onDeploy) {
    maintain = async () => {
      await sweep();
      await worker.claimOnce();
    };
  }

  const app = createApp(deps);
  const server = Deno.serve({
    port: config.port,
    onListen: ({ hostname, port }) =>
      log.info("listening", { url: `http://${hostname}:${port}`, kv: config.kvPath ?? "platform" }),
  }, app.fetch);

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info("shutting down", { signal });
    clearInterval(sweeper);
    loopDelay.stop();
    // New requests get 503 and open event streams end (their clients resume on another instance);
    // requests already running, such as an upload, and jobs get their grace (lib/drain.ts).
    const drained = deps.drain.begin(SHUTDOWN_REQUESTS_MS);
    log.info("event streams ended", { count: endAllStreams() });
    const [requestsDone] = await Promise.all([drained, worker.stop()]);
    // a request admitted before the drain began may have opened its stream since
    endAllStreams();
    if (!requestsDone) log.warn("requests still running at shutdown", { count: deps.drain.inFlight });
    // Nothing runs any more. With the cron registered, server.shutdown() was seen not to resolve
    // (Deno 2.9.6, main.ts with no request open), so it gets a second at most.
    await Promise.race([server.shutdown(), new Promise((r) => setTimeout(r, 1000))]);
    kv.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", () => shutdown("SIGINT"));
  Deno.addSignalListener("SIGTERM", () => shutdown("SIGTERM"));
}

if (import.meta.main) await main();
