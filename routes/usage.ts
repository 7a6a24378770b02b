/** GET /api/usage: the caller's identity, rate-limit standing and daily token quota (API.md). */
import { Hono } from "hono";
import { clientOf } from "../lib/client.ts";
import type { PolicyName } from "../lib/config.ts";
import type { AppDeps } from "../lib/deps.ts";
import { quotaUsage } from "../lib/quota.ts";
import { rateLimiterFor } from "../lib/rate_limit.ts";
import { decisionOf } from "./middleware.ts";

const POLICIES: PolicyName[] = ["read", "ingest", "generate", "chat"];

/** Routes under /api/usage. */
export function usageRoutes(deps: AppDeps) {
  const app = new Hono();
  app.get("/", async (c) => {
    const client = await clientOf(deps, c);
    const limiter = rateLimiterFor(deps);
    // this request's own decision where it has one (read), so the body agrees with the headers
    const decisions = await Promise.all(POLICIES.map((p) => decisionOf(c, p) ?? limiter.peek(p, client)));
    const limits = Object.fromEntries(decisions.map((d) => [d.policy, {
      limit: d.limit,
      windowSeconds: d.windowSeconds,
      remaining: d.remaining,
      resetSeconds: d.resetSeconds,
    }]));
    return c.json({
      client: { kind: client.kind, tier: client.tier },
      limits,
      quota: await quotaUsage(deps.kv, deps.clock, client),
    });
  });
  return app;
}
