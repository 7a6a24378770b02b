/** The admin API (needs ADMIN_TOKEN): API keys — list, create (the secret is shown once), revoke. */
import { Hono } from "hono";
import { z } from "zod";
import { type ApiKeyRecord, createApiKey, listApiKeys, revokeApiKey } from "../lib/api_keys.ts";
import type { AppDeps } from "../lib/deps.ts";
import { BadRequestError, NotFoundError } from "../lib/errors.ts";
import { adminOnly } from "./middleware.ts";
import { idParam, jsonBody } from "./validate.ts";

const newKeyBody = z.object({
  name: z.string().trim().min(1).max(100),
  tier: z.string().min(1).max(32),
}).strict();

/** A key record as the admin API shows it. */
export function publicKey(r: ApiKeyRecord) {
  return {
    id: r.id,
    name: r.name,
    tier: r.tier,
    prefix: r.prefix,
    createdAt: new Date(r.createdAt).toISOString(),
    ...(r.revokedAt ? { revokedAt: new Date(r.revokedAt).toISOString() } : {}),
  };
}

/** Routes under /admin. */
export function adminRoutes(deps: AppDeps) {
  const { kv, clock, config } = deps;
  const app = new Hono();
  app.use("*", adminOnly(deps, { openWhenUnset: false }));

  app.get("/keys", async (c) => c.json({ keys: (await listApiKeys(kv)).map(publicKey) }));

  app.post("/keys", async (c) => {
    const body = await jsonBody(c, newKeyBody, 4 * 1024);
    if (!(body.tier in config.traffic.tiers) || body.tier === "anonymous") {
      const known = Object.keys(config.traffic.tiers).filter((t) => t !== "anonymous").join(", ");
      throw new BadRequestError("invalid_tier", `Unknown tier ${body.tier}; TIERS has: ${known}.`);
    }
    const { secret, record } = await createApiKey(kv, clock, body);
    return c.json({ key: secret, apiKey: publicKey(record) }, 201);
  });

  app.delete("/keys/:keyId", async (c) => {
    const record = await revokeApiKey(kv, clock, idParam(c, "keyId"));
    if (!record) throw new NotFoundError("No API key with that id.");
    return c.json({ apiKey: publicKey(record) });
  });

  return app;
}
