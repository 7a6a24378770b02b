/** GET /health: KV round trip, queue depth and age, model provider and circuit, what is shed and why, version. */
import { Hono } from "hono";
import type { AppDeps } from "../lib/deps.ts";
import { keys } from "../lib/keys.ts";
import { timedKv } from "../lib/metrics.ts";
import { shedderFor } from "../lib/shedding.ts";

/** Measures one KV read; null when KV is unreachable. */
async function kvRoundTrip(kv: Deno.Kv): Promise<number | null> {
  const start = performance.now();
  try {
    await timedKv("probe", () => kv.get(keys.healthProbe()));
    return Math.round((performance.now() - start) * 100) / 100;
  } catch {
    return null;
  }
}

export function healthRoutes(deps: AppDeps) {
  const app = new Hono();
  app.get("/", async (c) => {
    const latencyMs = await kvRoundTrip(deps.kv);
    const kvOk = latencyMs !== null;
    // queue and circuit as the shedder last read them (at most 1 s old), so a flood of health
    // checks costs one KV read each, not a scan of the queue
    const shed = kvOk ? await shedderFor(deps).state() : null;
    const queue = shed?.queue ?? { depth: 0, oldestAgeSeconds: 0 };
    const circuit = shed?.circuit ?? "closed";
    const shedding = shed?.shedding ?? [];
    const draining = deps.drain.draining;
    const body = {
      status: kvOk && !draining && !shedding.length && circuit === "closed" ? "ok" : "degraded",
      ...(draining ? { draining } : {}),
      kv: { ok: kvOk, latencyMs },
      queue,
      llm: {
        provider: deps.models.llm.name,
        model: deps.models.llm.model,
        circuit,
      },
      shedding,
      version: deps.version,
    };
    return c.json(body, kvOk && !draining ? 200 : 503);
  });
  return app;
}
