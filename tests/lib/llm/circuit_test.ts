import assert from "node:assert/strict";
import { Circuit } from "../../../lib/llm/circuit.ts";
import type { AppError } from "../../../lib/errors.ts";
import { FakeClock } from "../../helpers.ts";

Deno.test("Circuit opens at the threshold, lets exactly one probe through after the cool-down, and closes on success", async () => {
  const kv = await Deno.openKv(":memory:");
  const clock = new FakeClock();
  const circuit = new Circuit(kv, clock, "openai", { threshold: 3, cooldownMs: 10_000, probeMs: 5_000 });
  for (let i = 0; i < 2; i++) await circuit.failure();
  assert.equal(await circuit.state(), "closed");
  await circuit.admit();
  await circuit.failure();
  assert.equal(await circuit.state(), "open");
  await assert.rejects(
    () => circuit.admit(),
    (e: AppError) => e.code === "llm_unavailable" && e.headers["Retry-After"] === "10",
  );
  clock.advance(10_000);
  assert.equal(await circuit.state(), "half_open");
  await circuit.admit();
  await assert.rejects(
    () => circuit.admit(),
    (e: AppError) => e.code === "llm_unavailable",
    "only one probe",
  );
  await circuit.success();
  assert.equal(await circuit.state(), "closed");
  await circuit.admit();
  kv.close();
});

Deno.test("Circuit reopens when the probe fails", async () => {
  const kv = await Deno.openKv(":memory:");
  const clock = new FakeClock();
  const circuit = new Circuit(kv, clock, "openai", { threshold: 1, cooldownMs: 1000, probeMs: 1000 });
  await circuit.failure();
  clock.advance(1000);
  await circuit.admit();
  await circuit.failure();
  assert.equal(await circuit.state(), "open");
  assert.equal(await circuit.retryAfterSeconds(), 1);
  kv.close();
});
