/** GET /metrics: Prometheus text; needs `Authorization: Bearer $ADMIN_TOKEN` when that is set. */
import { Hono } from "hono";
import { streamCapsFor } from "../lib/caps.ts";
import type { AppDeps } from "../lib/deps.ts";
import { keys } from "../lib/keys.ts";
import { metrics, registry, timedKv } from "../lib/metrics.ts";
import { loopDelay, OPTIONAL_KINDS, shedderFor } from "../lib/shedding.ts";
import { adminOnly } from "./middleware.ts";

const CIRCUIT_STATES = ["closed", "open", "half_open"] as const;

/** Sets the gauges that are read at scrape time, then renders the registry. */
export async function collectMetrics(deps: AppDeps): Promise<string> {
  // queue and circuit as the shedder last read them (at most 1 s old): a scrape scans nothing
  const [shed] = await Promise.all([
    shedderFor(deps).state().catch(() => null),
    timedKv("probe", () => deps.kv.get(keys.healthProbe())).catch(() => null),
  ]);
  if (shed) {
    metrics.queueDepth.set({}, shed.queue.depth);
    metrics.queueOldestAge.set({}, shed.queue.oldestAgeSeconds);
    for (const s of CIRCUIT_STATES) metrics.circuitState.set({ state: s }, s === shed.circuit ? 1 : 0);
  }
  if (shed) {
    for (const kind of OPTIONAL_KINDS) {
      metrics.shedding.set({ kind }, shed.shedding.some((s) => s.kind === kind) ? 1 : 0);
    }
  }
  metrics.openStreams.set({}, streamCapsFor(deps).open);
  const mem = Deno.memoryUsage();
  metrics.memory.set({ kind: "rss" }, mem.rss);
  metrics.memory.set({ kind: "heap_total" }, mem.heapTotal);
  metrics.memory.set({ kind: "heap_used" }, mem.heapUsed);
  metrics.memory.set({ kind: "external" }, mem.external);
  metrics.loopDelay.set({}, loopDelay.delayMs() / 1000);
  return registry.render();
}

/** Routes under /metrics. */
export function metricsRoutes(deps: AppDeps) {
  const app = new Hono();
  app.use("*", adminOnly(deps, { openWhenUnset: true }));
  app.get(
    "/",
    async (c) =>
      c.body(await collectMetrics(deps), 200, { "Content-Type": "text/plain; version=0.0.4; charset=utf-8" }),
  );
  return app;
}
