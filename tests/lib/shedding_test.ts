import assert from "node:assert/strict";
import { configFromEnv } from "../../lib/config.ts";
import {
  type CircuitState,
  type LoadSignals,
  LoopDelaySampler,
  OPTIONAL_KINDS,
  Shedder,
} from "../../lib/shedding.ts";

function signals(over: Partial<{ depth: number; age: number; delay: number; circuit: CircuitState }> = {}) {
  const s = { depth: 0, age: 0, delay: 0, circuit: "closed" as CircuitState, ...over };
  const load: LoadSignals = {
    queue: () => Promise.resolve({ depth: s.depth, oldestAgeSeconds: s.age }),
    loopDelayMs: () => s.delay,
    circuit: () => Promise.resolve(s.circuit),
  };
  return { s, load };
}

const thresholds = configFromEnv({
  SHED_QUEUE_DEPTH: "50",
  SHED_QUEUE_AGE: "60s",
  SHED_LOOP_DELAY: "200ms",
}).traffic;

Deno.test("Shedder refuses optional kinds on each trigger and lets the rest through", async (t) => {
  const cases: [string, Parameters<typeof signals>[0], RegExp][] = [
    ["queue depth", { depth: 50 }, /queue depth 50 >= 50/],
    ["oldest queued age", { age: 61 }, /oldest queued job 61s >= 60s/],
    ["event-loop delay", { delay: 250 }, /event-loop delay 250ms >= 200ms/],
    ["model circuit open", { circuit: "open" }, /model circuit open/],
  ];
  for (const [name, over, reason] of cases) {
    await t.step(name, async () => {
      const shedder = new Shedder(signals(over).load, thresholds, 0);
      const state = await shedder.state();
      assert.deepEqual(state.shedding.map((x) => x.kind), [...OPTIONAL_KINDS]);
      assert.match(state.shedding[0].reason, reason);
      for (const kind of OPTIONAL_KINDS) {
        await assert.rejects(shedder.assertAllowed(kind), (e: Error & Record<string, unknown>) => {
          assert.equal(e.status, 503);
          assert.equal(e.code, "overloaded");
          assert.ok(Number((e.headers as Record<string, string>)["Retry-After"]) >= 1);
          return true;
        });
      }
      await shedder.assertAllowed("overview");
      await shedder.assertAllowed("chat");
    });
  }
  await t.step("below every threshold, a half-open circuit included: nothing is shed", async () => {
    const shedder = new Shedder(
      signals({ depth: 49, age: 59, delay: 199, circuit: "half_open" }).load,
      thresholds,
      0,
    );
    assert.deepEqual((await shedder.state()).shedding, []);
    await shedder.assertAllowed("podcast");
  });
  await t.step("several triggers are all named", async () => {
    const shedder = new Shedder(signals({ depth: 500, delay: 900 }).load, thresholds, 0);
    assert.equal((await shedder.state()).reasons.length, 2);
  });
  await t.step("signals are read at most once per cache period, and recover", async () => {
    const { s, load } = signals({ depth: 100 });
    let reads = 0;
    const counted = { ...load, queue: () => (reads++, load.queue()) };
    const shedder = new Shedder(counted, thresholds, 60_000);
    await Promise.all(Array.from({ length: 20 }, () => shedder.state()));
    assert.equal(reads, 1);
    s.depth = 0;
    assert.equal((await new Shedder(counted, thresholds, 0).state()).reasons.length, 0);
  });
});

Deno.test("LoopDelaySampler sees a blocked event loop", async () => {
  const sampler = new LoopDelaySampler(20).start();
  try {
    // let one tick pass, then hold the loop for 300 ms
    await new Promise<void>((resolve) => {
      const id = setInterval(() => {
        clearInterval(id);
        resolve();
      }, 20);
    });
    const until = performance.now() + 300;
    while (performance.now() < until) { /* busy: the loop cannot run timers */ }
    const seen = await new Promise<number>((resolve) => {
      const id = setInterval(() => {
        if (sampler.delayMs() > 0) {
          clearInterval(id);
          resolve(sampler.delayMs());
        }
      }, 5);
    });
    assert.ok(seen >= 200, `delay ${seen}ms`);
  } finally {
    sampler.stop();
  }
});
