/**
 * Rate limits are exact across processes: four copies of main.ts on ONE KV file, 200 simultaneous
 * requests from one client spread over all four, a limit of 10 → exactly 10 pass (not 10 each).
 */
import assert from "node:assert/strict";
import { type AppProcess, startAppProcess } from "../bench/app_process.ts";

const LIMIT = 10;
const WINDOW_SECONDS = 3600;
const REQUESTS = 200;

/** Fires all requests at once, round-robin over the processes; returns the count of each status. */
async function burst(apps: AppProcess[], client: string): Promise<Map<number, number>> {
  const statuses = await Promise.all(Array.from({ length: REQUESTS }, async (_, i) => {
    const res = await fetch(`${apps[i % apps.length].url}/api/repos/no-such-repo`, {
      headers: { "x-forwarded-for": client },
    });
    await res.body?.cancel();
    return res.status;
  }));
  const counts = new Map<number, number>();
  for (const s of statuses) counts.set(s, (counts.get(s) ?? 0) + 1);
  return counts;
}

Deno.test("rate limit: 4 processes on one KV file let exactly the limit through for one client", async () => {
  const dir = await Deno.makeTempDir({ prefix: "repolm-ratelimit-" });
  const kvPath = `${dir}/shared.kv`;
  // one trusted proxy hop: the client is the X-Forwarded-For address, so a rerun can be a new client
  const env = { RATE_LIMITS: `read=${LIMIT}/1h`, TRUST_PROXY: "1", QUEUES: "off", LOG_LEVEL: "error" };
  const apps: AppProcess[] = [];
  try {
    // the first creates the KV file; the other three open it while the first is serving
    apps.push(await startAppProcess(env, { kvPath }));
    apps.push(...await Promise.all([1, 2, 3].map(() => startAppProcess(env, { kvPath }))));
    let counts: Map<number, number>;
    for (let attempt = 0;; attempt++) {
      const windowBefore = Math.floor(Date.now() / 1000 / WINDOW_SECONDS);
      counts = await burst(apps, `203.0.113.${attempt + 1}`);
      // a burst that straddles an hour boundary counts in two windows: only then, again as a new client
      if (Math.floor(Date.now() / 1000 / WINDOW_SECONDS) === windowBefore || attempt > 0) break;
    }
    assert.deepEqual(
      Object.fromEntries(counts),
      { 404: LIMIT, 429: REQUESTS - LIMIT },
      "exactly the limit passes (404: the repo does not exist), every other request is 429",
    );
  } finally {
    await Promise.all(apps.map((a) => a.stop()));
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
