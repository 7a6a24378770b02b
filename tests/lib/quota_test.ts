import assert from "node:assert/strict";
import type { Client } from "../../lib/client.ts";
import { keys } from "../../lib/keys.ts";
import { quotaUsage, reserveTokens, settleTokens } from "../../lib/quota.ts";
import { FakeClock } from "../helpers.ts";

const client = (id: string, dailyTokens: number, globalDailyTokens = 0): Client => ({
  id,
  kind: "anonymous",
  tier: "anonymous",
  address: id,
  multiplier: 1,
  quota: { dailyTokens, globalDailyTokens },
});

Deno.test("reserveTokens under concurrency overshoots the quota by less than one reservation", async () => {
  const kv = await Deno.openKv(":memory:");
  const clock = new FakeClock(Date.UTC(2026, 10, 22, 15, 30));
  try {
    const me = client("c", 10_000);
    const results = await Promise.allSettled(
      Array.from({ length: 100 }, () => reserveTokens(kv, clock, me, 700)),
    );
    const admitted = results.filter((r) => r.status === "fulfilled").length;
    // admitted while below the limit: ceil(10000 / 700) = 15 reservations, 10,500 tokens
    assert.equal(admitted, 15);
    const used = (await quotaUsage(kv, clock, me)).tokensUsed;
    assert.equal(used, 15 * 700);
    assert.ok(used - me.quota.dailyTokens < 700);
    for (const r of results) {
      if (r.status === "rejected") {
        assert.equal(r.reason.status, 429);
        assert.equal(r.reason.code, "quota_exceeded");
        assert.equal(r.reason.extra.resetsAt, "2026-11-23T00:00:00.000Z");
        assert.equal(r.reason.headers["Retry-After"], String(8.5 * 3600));
      }
    }
  } finally {
    kv.close();
  }
});

Deno.test("reserveTokens stops everyone at the global daily cap", async () => {
  const kv = await Deno.openKv(":memory:");
  const clock = new FakeClock();
  try {
    const results = await Promise.allSettled(
      Array.from(
        { length: 30 },
        (_, i) => reserveTokens(kv, clock, client(`c${i}`, 1_000_000, 5_000), 1_000),
      ),
    );
    assert.equal(results.filter((r) => r.status === "fulfilled").length, 5);
    const refused = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
    assert.equal(refused.reason.extra.scope, "global");
    assert.equal((await kv.get(keys.quotaGlobal(Math.floor(clock.now() / 86_400_000)))).value, 5_000);
  } finally {
    kv.close();
  }
});

Deno.test("settleTokens replaces the estimate with the actual count, once", async (t) => {
  const kv = await Deno.openKv(":memory:");
  const clock = new FakeClock();
  const me = client("s", 10_000, 1_000_000);
  try {
    const r = await reserveTokens(kv, clock, me, 2_000);
    await t.step("more than estimated", async () => {
      await settleTokens(kv, r, 2_500);
      assert.equal((await quotaUsage(kv, clock, me)).tokensUsed, 2_500);
    });
    await t.step("settling again (a retried job) changes nothing", async () => {
      await Promise.all([settleTokens(kv, r, 2_500), settleTokens(kv, r, 9_999)]);
      assert.equal((await quotaUsage(kv, clock, me)).tokensUsed, 2_500);
    });
    await t.step("a failed call settles at 0 and gives the tokens back", async () => {
      const failed = await reserveTokens(kv, clock, me, 3_000);
      await settleTokens(kv, failed, 0);
      assert.equal((await quotaUsage(kv, clock, me)).tokensUsed, 2_500);
      assert.equal((await kv.get(keys.quotaGlobal(r.day))).value, 2_500);
    });
    await t.step("a new day starts from zero; a late settlement still lands on its own day", async () => {
      const late = await reserveTokens(kv, clock, me, 1_000);
      clock.advance(86_400_000);
      assert.equal((await quotaUsage(kv, clock, me)).tokensUsed, 0);
      await settleTokens(kv, late, 500);
      assert.equal((await kv.get(keys.quotaClient(me.id, late.day))).value, 3_000);
      assert.equal((await quotaUsage(kv, clock, me)).tokensUsed, 0);
    });
  } finally {
    kv.close();
  }
});
