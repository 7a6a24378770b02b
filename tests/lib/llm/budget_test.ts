import assert from "node:assert/strict";
import { type BudgetGrant, type BudgetWait, ModelBudget } from "../../../lib/llm/budget.ts";
import { keys } from "../../../lib/keys.ts";
import { FakeClock, waitFor } from "../../helpers.ts";

function granted(g: BudgetGrant | BudgetWait): BudgetGrant {
  assert.ok("release" in g, `a grant, not a wait (${JSON.stringify(g)})`);
  return g;
}

Deno.test("ModelBudget caps calls in flight across holders and frees a slot on release", async () => {
  const kv = await Deno.openKv(":memory:");
  const clock = new FakeClock();
  const budget = new ModelBudget(kv, clock, {
    maxInFlight: 2,
    tokensPerMinute: 1_000_000,
    slotLeaseMs: 60_000,
  });
  const a = granted(await budget.tryAcquire(100));
  const b = granted(await budget.tryAcquire(100));
  const c = await budget.tryAcquire(100);
  assert.ok("waitMs" in c && c.reason === "calls_in_flight");
  assert.equal(await budget.inFlight(), 2);
  await a.release(120);
  const d = granted(await budget.tryAcquire(100));
  await Promise.all([b.release(), d.release()]);
  assert.equal(await budget.inFlight(), 0);
  kv.close();
});

Deno.test("ModelBudget takes back a slot whose holder died once its lease lapses", async () => {
  const kv = await Deno.openKv(":memory:");
  const clock = new FakeClock();
  const budget = new ModelBudget(kv, clock, {
    maxInFlight: 1,
    tokensPerMinute: 1_000_000,
    slotLeaseMs: 60_000,
  });
  const dead = granted(await budget.tryAcquire(10));
  assert.ok("waitMs" in await budget.tryAcquire(10));
  clock.advance(60_001);
  const next = granted(await budget.tryAcquire(10));

  // the old holder comes back and releases: the slot is no longer its own, so it stays taken
  await dead.release();
  assert.equal(await budget.inFlight(), 1);
  assert.ok("waitMs" in await budget.tryAcquire(10), "the new holder keeps its slot");
  await next.release();
  assert.equal(await budget.inFlight(), 0);
  kv.close();
});

Deno.test("ModelBudget renews a held slot's lease until it is released", async () => {
  const kv = await Deno.openKv(":memory:");
  const clock = new FakeClock();
  // a lease of 300 ms is renewed every 100 ms (real time); the fake clock says how far it reaches
  const budget = new ModelBudget(kv, clock, { maxInFlight: 1, tokensPerMinute: 1_000_000, slotLeaseMs: 300 });
  const grant = granted(await budget.tryAcquire(10));
  const leaseEnd = async () => (await kv.get<{ until: number }>(keys.llmSlot(0))).value?.until ?? 0;
  const first = await leaseEnd();
  for (let i = 1; i <= 3; i++) {
    clock.advance(250);
    await waitFor(async () => (await leaseEnd()) > first + 250 * (i - 1), 5000, `renewal ${i}`);
  }
  assert.ok(clock.now() > first, "the first lease has run out on the clock");
  assert.ok("waitMs" in await budget.tryAcquire(10), "the holder still has its slot");
  await grant.release();
  clock.advance(10_000);
  assert.equal(await leaseEnd(), 0, "released: the slot key is gone");
  await granted(await budget.tryAcquire(10)).release();
  kv.close();
});

Deno.test("ModelBudget holds tokens per minute and says to wait for the next window", async () => {
  const kv = await Deno.openKv(":memory:");
  const clock = new FakeClock(Date.UTC(2026, 10, 22, 12, 0, 30));
  const budget = new ModelBudget(kv, clock, { maxInFlight: 10, tokensPerMinute: 1000, slotLeaseMs: 60_000 });
  const a = granted(await budget.tryAcquire(600));
  const b = await budget.tryAcquire(600);
  assert.ok("waitMs" in b && b.reason === "tokens_per_minute");
  assert.ok(b.waitMs > 29_000 && b.waitMs <= 30_100, `waits until the next minute (${b.waitMs})`);
  await a.release(200);
  const c = granted(await budget.tryAcquire(600));
  clock.advance(60_000);
  const d = granted(await budget.tryAcquire(900));
  await Promise.all([c.release(), d.release()]);
  kv.close();
});
