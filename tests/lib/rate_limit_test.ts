import assert from "node:assert/strict";
import type { Client } from "../../lib/client.ts";
import { parseRateLimits } from "../../lib/config.ts";
import { keys } from "../../lib/keys.ts";
import { RateLimiter, rateLimitHeaders } from "../../lib/rate_limit.ts";
import { FakeClock } from "../helpers.ts";

const client = (id: string, multiplier = 1): Client => ({
  id,
  kind: "anonymous",
  tier: "anonymous",
  address: id,
  multiplier,
  quota: { dailyTokens: 0, globalDailyTokens: 0 },
});

Deno.test("RateLimiter.hit admits exactly the limit under concurrency, per policy and per client", async (t) => {
  const kv = await Deno.openKv(":memory:");
  const clock = new FakeClock(Date.UTC(2026, 10, 22, 12, 0, 0));
  const limiter = new RateLimiter(
    kv,
    clock,
    parseRateLimits("read=10/1m,ingest=3/1h,generate=4/1h,chat=5/1h"),
  );
  try {
    for (const [policy, limit] of [["read", 10], ["ingest", 3], ["generate", 4], ["chat", 5]] as const) {
      await t.step(`${policy}: 300 simultaneous hits → ${limit} allowed`, async () => {
        const decisions = await Promise.all(
          Array.from({ length: 300 }, () => limiter.hit(policy, client("a"))),
        );
        const allowed = decisions.filter((d) => d.allowed);
        assert.equal(allowed.length, limit);
        assert.deepEqual(allowed.map((d) => d.remaining).sort((x, y) => x - y), [...Array(limit).keys()]);
        assert.ok(decisions.filter((d) => !d.allowed).every((d) => d.remaining === 0));
      });
    }
    await t.step("another client has its own counter", async () => {
      assert.equal((await limiter.hit("read", client("b"))).allowed, true);
    });
    await t.step("a tier multiplies the limit", async () => {
      const results = await Promise.all(
        Array.from({ length: 40 }, () => limiter.hit("read", client("pro", 3))),
      );
      assert.equal(results.filter((d) => d.allowed).length, 30);
      assert.equal(results[0].limit, 30);
    });
  } finally {
    kv.close();
  }
});

Deno.test("RateLimiter windows: reset time counts down, the next window starts fresh in its own key", async () => {
  const kv = await Deno.openKv(":memory:");
  const start = Date.UTC(2026, 10, 22, 12, 0, 10);
  const clock = new FakeClock(start);
  const limiter = new RateLimiter(kv, clock, parseRateLimits("read=2/1m"));
  try {
    const a = client("w");
    assert.equal((await limiter.hit("read", a)).resetSeconds, 50);
    await limiter.hit("read", a);
    const refused = await limiter.hit("read", a);
    assert.equal(refused.allowed, false);
    clock.advance(49_000);
    assert.equal((await limiter.hit("read", a)).resetSeconds, 1);
    clock.advance(1_000);
    const fresh = await limiter.hit("read", a);
    assert.deepEqual([fresh.allowed, fresh.remaining, fresh.resetSeconds], [true, 1, 60]);
    const peek = await limiter.peek("read", a);
    assert.equal(peek.remaining, 1, "peek does not count");
    // the counter key names its window, so nothing grows: one small key per client, policy and window
    const stored = [];
    for await (const e of kv.list({ prefix: ["rl", "read", "w"] })) stored.push(e.key);
    assert.deepEqual(stored, [
      keys.rateWindow("read", "w", Math.floor(start / 60_000)),
      keys.rateWindow("read", "w", Math.floor(start / 60_000) + 1),
    ]);
  } finally {
    kv.close();
  }
});

Deno.test("rateLimitHeaders follows the IETF ratelimit-headers draft", () => {
  const h = rateLimitHeaders({
    policy: "read",
    allowed: true,
    limit: 120,
    windowSeconds: 60,
    remaining: 7,
    resetSeconds: 42,
  });
  assert.deepEqual(h, { "RateLimit-Policy": '"read";q=120;w=60', "RateLimit": '"read";r=7;t=42' });
});

Deno.test("RateLimiter: two instances on one KV, many clients at once — each client gets exactly its limit", async () => {
  const kv = await Deno.openKv(":memory:");
  const clock = new FakeClock(Date.UTC(2026, 10, 22, 12, 0, 0));
  const policies = parseRateLimits("read=7/1m");
  // small batches so one commit holds several clients' counters and conflicts force the split path
  const instances = [new RateLimiter(kv, clock, policies, 5), new RateLimiter(kv, clock, policies, 5)];
  try {
    const clients = Array.from({ length: 40 }, (_, i) => client(`c${i}`));
    // each instance counts one request per client, so each holds a stale versionstamp for all of them
    for (const limiter of instances) await Promise.all(clients.map((c) => limiter.hit("read", c)));
    const decisions = await Promise.all(
      Array.from({ length: 40 * 25 }, (_, i) => instances[i % 2].hit("read", clients[(i * 7) % 40])),
    );
    const allowed = new Map<number, number>();
    decisions.forEach((d, i) => {
      if (d.allowed) allowed.set((i * 7) % 40, (allowed.get((i * 7) % 40) ?? 0) + 1);
    });
    assert.deepEqual([...new Set(allowed.values())], [5], "7, less the 2 counted while warming up");
    assert.equal(allowed.size, 40);
    for (const c of clients) assert.equal((await instances[0].peek("read", c)).remaining, 0);
  } finally {
    kv.close();
  }
});

Deno.test("RateLimiter: a batch that keeps conflicting is split per counter and stays exact", async () => {
  const kv = await Deno.openKv(":memory:");
  let failures = 0;
  // a KV whose multi-counter commits fail their checks twice, as if another instance kept writing
  const flaky = new Proxy(kv, {
    get(target, prop) {
      if (prop !== "atomic") return Reflect.get(target, prop).bind(target);
      return () => {
        const atomic = target.atomic();
        let sets = 0;
        const origSet = atomic.set.bind(atomic);
        atomic.set = (...args: Parameters<typeof atomic.set>) => (sets++, origSet(...args));
        const origCommit = atomic.commit.bind(atomic);
        atomic.commit = () => {
          if (sets > 1 && failures < 2) {
            failures++;
            return Promise.resolve({ ok: false } as Deno.KvCommitError);
          }
          return origCommit();
        };
        return atomic;
      };
    },
  });
  const limiter = new RateLimiter(flaky, new FakeClock(), parseRateLimits("read=3/1m"));
  try {
    const decisions = await Promise.all(
      Array.from({ length: 60 }, (_, i) => limiter.hit("read", client(`k${i % 6}`))),
    );
    assert.equal(failures, 2);
    assert.equal(decisions.filter((d) => d.allowed).length, 6 * 3);
  } finally {
    kv.close();
  }
});
