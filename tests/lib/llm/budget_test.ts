import assert from "node:assert/strict";
import { ModelBudget } from "../../../lib/llm/budget.ts";
import { FakeClock } from "../../helpers.ts";

Deno.test("ModelBudget caps calls in flight across holders and frees a slot on release", async () => {
  const kv = await Deno.openKv(":memory:");
  const clock = new FakeClock();
  const budget = new ModelBudget(kv, clock, {
    maxInFlight: 2,
    tokensPerMinute: 1_000_000,
    slotLeaseMs: 60_000,
  });
  const a = await budget.tryAcquire(100);
  const b = await budget.tryAcquire(100);
  const c = await budget.tryAcquire(100);
  assert.ok("release" in a && "release" in b);
  assert.ok("waitMs" in c && c.reason === "calls_in_flight");
  assert.equal(await budget.inFlight(), 2);
  await a.release(120);
  assert.ok("release" in await budget.tryAcquire(100));
  kv.close();
});

Deno.test("ModelBudget takes back a slot whose holder died once its lease lapses", async () => {
  const kv = await Deno.openKv(":memory:");
  const clock = new FakeClock();
  const budget = new ModelBudget(kv, clock, {
    maxInFlight: 1,
    tokensPerMinute: 1_000_000,
    slotLeaseMs: 1000,
  });
  assert.ok("release" in await budget.tryAcquire(10));
  assert.ok("waitMs" in await budget.tryAcquire(10));
  clock.advance(1001);
  assert.ok("release" in await budget.tryAcquire(10));
  kv.close();
});

Deno.test("ModelBudget holds tokens per minute and says to wait for the next window", async () => {
  const kv = await Deno.openKv(":memory:");
  const clock = new FakeClock(Date.UTC(2026, 10, 22, 12, 0, 30));
  const budget = new ModelBudget(kv, clock, { maxInFlight: 10, tokensPerMinute: 1000, slotLeaseMs: 60_000 });
  const a = await budget.tryAcquire(600);
  assert.ok("release" in a);
  const b = await budget.tryAcquire(600);
  assert.ok("waitMs" in b && b.reason === "tokens_per_minute");
  assert.ok(b.waitMs > 29_000 && b.waitMs <= 30_100, `waits until the next minute (${b.waitMs})`);
  await a.release(200);
  assert.ok("release" in await budget.tryAcquire(600), "settling the real use gives the difference back");
  clock.advance(60_000);
  assert.ok("release" in await budget.tryAcquire(900));
  kv.close();
});
