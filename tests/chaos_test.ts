/**
 * Chaos, short form (bench/chaos.ts is the long one: `deno task chaos`). A fresh seed each run
 * unless CHAOS_SEED is set; a failure prints the seed and every broken promise.
 */
import assert from "node:assert/strict";
import { type ChaosReport, runFaultChaos, runKillChaos } from "../bench/chaos.ts";
import { seedFrom } from "../bench/loadtest_rng.ts";

function assertPassed(report: ChaosReport) {
  assert.deepEqual(
    report.problems,
    [],
    `seed ${report.seed} (replay: CHAOS_SEED=${report.seed} deno test -A tests/chaos_test.ts)\n` +
      JSON.stringify(report.counts, null, 1),
  );
}

const quiet = () => {};

Deno.test("chaos: ten kill -9s during a mixed load; every job ends, no text duplicated or lost, no orphans", async () => {
  const seed = seedFrom("CHAOS_SEED");
  const report = await runKillChaos({
    seed,
    kills: 10,
    minUpMs: 500,
    maxUpMs: 1400,
    clients: 8,
    settleMs: 30_000,
    llmTokens: 120,
    llmDelayMs: 5,
    log: quiet,
  });
  assertPassed(report);
  assert.equal(report.counts.kills, 10);
  assert.ok(report.counts.jobs > 0 && report.counts.uploads > 0, JSON.stringify(report.counts));
});

Deno.test("chaos: model 429 storms, hangs and drops under load; every stream ends in time, refusals say when to retry", async () => {
  const seed = seedFrom("CHAOS_SEED");
  const report = await runFaultChaos({
    seed,
    clients: 6,
    phaseSeconds: 2,
    streamDeadlineMs: 20_000,
    log: quiet,
  });
  assertPassed(report);
  const refused = Object.keys(report.counts).some((k) => k.includes("refused 503 llm_unavailable"));
  assert.ok(refused, `no request saw the open circuit: ${JSON.stringify(report.counts)}`);
});
