import assert from "node:assert/strict";
import { configFromEnv, parseRateLimits } from "../../lib/config.ts";

Deno.test("configFromEnv applies API.md defaults", () => {
  const c = configFromEnv({});
  assert.equal(c.port, 8000);
  assert.equal(c.kvPath, "./data/repolm.kv");
  assert.equal(c.llm.model, "offline");
  assert.equal(c.github.apiUrl, "https://api.github.com");
  assert.deepEqual(c.rateLimits.read, { limit: 120, windowSeconds: 60 });
  assert.deepEqual(c.rateLimits.ingest, { limit: 5, windowSeconds: 3600 });
  assert.equal(c.repoTtlMs, 7 * 86400_000);
});

Deno.test("configFromEnv names each bad variable", () => {
  assert.throws(() => configFromEnv({ PORT: "eighty" }), /PORT/);
  assert.throws(() => configFromEnv({ PORT: "99999" }), /PORT/);
  assert.throws(() => configFromEnv({ REPO_TTL: "forever" }), /REPO_TTL/);
  assert.throws(() => configFromEnv({ RATE_LIMITS: "read=lots" }), /RATE_LIMITS/);
  assert.throws(() => configFromEnv({ RATE_LIMITS: "read=10/0m" }), /RATE_LIMITS/);
  for (const name of ["LLM_TIMEOUT", "CIRCUIT_COOLDOWN", "REPO_TTL", "JOB_TTL", "JOB_TIMEOUT", "JOB_LEASE"]) {
    assert.throws(() => configFromEnv({ [name]: "0s" }), new RegExp(`${name}: "0s" must be longer than 0`));
  }
  assert.equal(
    configFromEnv({ SHED_QUEUE_AGE: "0s" }).traffic.shedQueueAgeMs,
    0,
    "0 turns a shedding rule off",
  );
  assert.throws(() => configFromEnv({ GITHUB_API_URL: "file:///etc" }), /GITHUB_API_URL/);
});

Deno.test("configFromEnv: an empty variable counts as unset; Queues are off on Deploy and KV Connect", () => {
  assert.equal(configFromEnv({ PORT: "" }).port, 8000);
  assert.equal(configFromEnv({ MAX_FILES: "" }).limits.files, 50_000);
  assert.equal(configFromEnv({}).jobs.useQueues, true);
  assert.equal(configFromEnv({ KV_PATH: "http://kv.internal:4512" }).jobs.useQueues, false);
  assert.equal(configFromEnv({ DENO_DEPLOYMENT_ID: "x" }).jobs.useQueues, false);
  assert.equal(configFromEnv({ KV_PATH: "http://kv.internal:4512", QUEUES: "on" }).jobs.useQueues, true);
});

Deno.test("parseRateLimits overrides only the named policies", () => {
  const p = parseRateLimits("read=10/1s,chat=3/5m,ingest=2/h");
  assert.deepEqual(p.read, { limit: 10, windowSeconds: 1 });
  assert.deepEqual(p.chat, { limit: 3, windowSeconds: 300 });
  assert.deepEqual(p.ingest, { limit: 2, windowSeconds: 3600 });
  assert.deepEqual(p.generate, { limit: 20, windowSeconds: 3600 });
});
