/** GET /health: KV round trip, queue depth and age, model provider, shedding and version. */
import { Hono } from "hono";
import type { AppDeps } from "../lib/deps.ts";

/** Measures one KV read; null when KV is unreachable. */
async function kvRoundTrip(kv: Deno.Kv): Promise<number | null> {
  const start = performance.now();
  try {
    await kv.get(["health"]);
    return Math.round((performance.now() - start) * 100) / 100;
  } catch {
    return null;
  }
}

export function healthRoutes(deps: AppDeps) {
  const app = new Hono();
  app.get("/", async (c) => {
    const latencyMs = await kvRoundTrip(deps.kv);
    const queue = latencyMs === null ? { depth: 0, oldestAgeSeconds: 0 } : await deps.jobs.queueStats();
    const body = {
      status: latencyMs === null ? "degraded" : "ok",
      kv: { ok: latencyMs !== null, latencyMs },
      queue,
      llm: {
        provider: deps.config.llm.apiKey ? "openai" : "offline",
        model: deps.config.llm.model,
        circuit: "closed",
      },
      shedding: [] as string[],
      version: deps.version,
    };
    return c.json(body, latencyMs === null ? 503 : 200);
  });
  return app;
}
