/**
 * The composition root: configuration parsed once, KV opened once, dependencies built and passed
 * down, workers started, and a graceful shutdown on SIGINT/SIGTERM.
 */
import { systemClock } from "./lib/clock.ts";
import { configFromEnv } from "./lib/config.ts";
import { createLogger } from "./lib/log.ts";
import { loopDelay } from "./lib/shedding.ts";
import { sweepExpiredRepos } from "./lib/repos.ts";
import { sweepAbandonedUploads } from "./lib/upload.ts";
import { createServices } from "./queues/mod.ts";
import { createApp } from "./routes/mod.ts";
import denoJson from "./deno.json" with { type: "json" };

const SWEEP_EVERY_MS = 5 * 60_000;

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
  // Deno Deploy has no Queues and puts idle isolates to sleep: a cron tick sweeps and claims the
  // jobs that are due or whose worker died, so queued work never waits for the next request.
  if (config.onDeploy) {
    Deno.cron("repolm maintenance", "* * * * *", async () => {
      await sweep();
      await worker.claimOnce();
    });
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
    await worker.stop();
    await server.shutdown();
    kv.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", () => shutdown("SIGINT"));
  Deno.addSignalListener("SIGTERM", () => shutdown("SIGTERM"));
}

if (import.meta.main) await main();
