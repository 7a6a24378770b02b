import assert from "node:assert/strict";
import { type Clock, systemClock } from "../../lib/clock.ts";
import { AppError, PermanentJobError } from "../../lib/errors.ts";
import { JobStore } from "../../lib/jobs.ts";
import { keys } from "../../lib/keys.ts";
import { createLogger } from "../../lib/log.ts";
import { type JobHandler, Worker } from "../../queues/worker.ts";
import { FakeClock, waitFor } from "../helpers.ts";

const quiet = createLogger("silent");

async function setup(clock: Clock = systemClock, maxAttempts = 3) {
  const kv = await Deno.openKv(":memory:");
  const store = new JobStore(kv, clock, {
    maxAttempts,
    leaseMs: 1000,
    ttlMs: 86_400_000,
    useQueues: false,
    concurrency: 2,
  });
  return { kv, store, clock };
}

function worker(
  store: JobStore,
  handler: JobHandler,
  options: Partial<ConstructorParameters<typeof Worker>[2]> = {},
) {
  return new Worker(store, { ingest: handler }, {
    concurrency: 2,
    timeoutMs: 5000,
    leaseMs: 1000,
    useQueues: false,
    pollMs: 250,
    graceMs: 500,
    retryBaseMs: 50,
    ...options,
  }, quiet);
}

Deno.test("JobStore.create returns one job for 20 simultaneous creates with the same dedupe key", async () => {
  const { kv, store } = await setup();
  const results = await Promise.all(
    Array.from(
      { length: 20 },
      () => store.create({ type: "ingest", subject: {}, payload: {}, dedupeKey: "same" }),
    ),
  );
  const ids = new Set(results.map((r) => r!.job.id));
  assert.equal(ids.size, 1);
  assert.equal(results.filter((r) => r!.created).length, 1);
  let ready = 0;
  for await (const _ of kv.list({ prefix: keys.jobReadyPrefix() })) ready++;
  assert.equal(ready, 1);
  kv.close();
});

Deno.test("JobStore.create refuses when the caller's check fails, writing nothing", async () => {
  const { kv, store } = await setup();
  await kv.set(["guard"], 1);
  const answer = await store.create(
    { type: "ingest", subject: {}, payload: {}, dedupeKey: "k" },
    (atomic) => atomic.check({ key: ["guard"], versionstamp: null }),
  );
  assert.equal(answer, null);
  assert.equal((await kv.get(keys.jobActive("k"))).value, null);
  kv.close();
});

Deno.test("Worker runs a job to success, reports progress and frees the dedupe key", async () => {
  const { kv, store } = await setup();
  const seen: string[] = [];
  const w = worker(store, {
    async run(_job, ctx) {
      await ctx.progress("working", 1, 2);
      seen.push("ran");
      return (atomic) => atomic.set(["result"], "written with success");
    },
  });
  w.start();
  const { job } = (await store.create({ type: "ingest", subject: {}, payload: {}, dedupeKey: "d" }))!;
  const done = await waitFor(async () => {
    const j = await store.get(job.id);
    return j?.status === "succeeded" ? j : null;
  });
  assert.deepEqual(seen, ["ran"]);
  assert.equal(done.attempts, 1);
  assert.equal((await kv.get(["result"])).value, "written with success");
  assert.equal((await kv.get(keys.jobActive("d"))).value, null);
  assert.ok((await kv.get(keys.jobStats("ingest"))).value);
  await w.stop();
  kv.close();
});

Deno.test("Worker retries transient errors with backoff, then fails with the last error's code", async () => {
  const { kv, store } = await setup(undefined, 3);
  let calls = 0;
  const w = worker(store, {
    run() {
      calls++;
      throw new AppError(502, "github_unavailable", "GitHub is down.");
    },
  });
  w.start();
  const { job } = (await store.create({ type: "ingest", subject: {}, payload: {} }))!;
  const failed = await waitFor(async () => {
    const j = await store.get(job.id);
    return j?.status === "failed" ? j : null;
  }, 20_000);
  assert.equal(calls, 3);
  assert.equal(failed.attempts, 3);
  assert.deepEqual(failed.error, { code: "github_unavailable", message: "GitHub is down." });
  await w.stop();
  kv.close();
});

Deno.test("Worker fails a permanent error at once, with onFailed writes in the same commit", async () => {
  const { kv, store } = await setup();
  let calls = 0;
  const w = worker(store, {
    run() {
      calls++;
      throw new PermanentJobError("repo_too_large", "Too big.");
    },
    onFailed: () => Promise.resolve((atomic) => atomic.set(["marked"], true)),
  });
  w.start();
  const { job } = (await store.create({ type: "ingest", subject: {}, payload: {} }))!;
  await waitFor(async () => (await store.get(job.id))?.status === "failed");
  assert.equal(calls, 1);
  assert.equal((await kv.get(["marked"])).value, true);
  await w.stop();
  kv.close();
});

Deno.test("Worker stops a job at its timeout and reports job_timeout", async () => {
  const { kv, store } = await setup(undefined, 1);
  const w = worker(store, {
    run: (_job, ctx) =>
      new Promise((_, reject) => ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason))),
    timeoutMs: 300,
  });
  w.start();
  const { job } = (await store.create({ type: "ingest", subject: {}, payload: {} }))!;
  const failed = await waitFor(async () => {
    const j = await store.get(job.id);
    return j?.status === "failed" ? j : null;
  });
  assert.equal(failed.error?.code, "job_timeout");
  await w.stop();
  kv.close();
});

Deno.test("JobStore.claim takes over a lapsed lease and the old holder can no longer write", async () => {
  const clock = new FakeClock(Date.now());
  const { kv, store } = await setup(clock);
  const { job } = (await store.create({ type: "ingest", subject: {}, payload: {} }))!;
  const first = await store.claim(job.id, "A");
  assert.ok(first);
  assert.equal(await store.claim(job.id, "B"), null, "a live lease is not taken");
  clock.advance(1500);
  const second = await store.claim(job.id, "B");
  assert.ok(second);
  assert.equal(second.job.attempts, 2);
  assert.equal(await store.renew(first.lease), false, "the old holder lost its lease");
  assert.equal(await store.progress(first.job, first.lease, { phase: "x", done: 0, total: 0 }), false);
  assert.equal(await store.finish(first.job, first.lease, "succeeded"), false);
  assert.equal((await store.get(job.id))?.status, "running");
  kv.close();
});

Deno.test("JobStore.toPublic shows queue position and an ETA from recent durations", async () => {
  const { kv, store } = await setup(new FakeClock());
  await store.recordDuration("ingest", 4000);
  const jobs = [];
  for (let i = 0; i < 5; i++) {
    jobs.push((await store.create({ type: "ingest", subject: {}, payload: { i } }))!.job);
  }
  const views = await Promise.all(jobs.map((j) => store.toPublic(j)));
  assert.deepEqual(views.map((v) => v.queuePosition), [1, 2, 3, 4, 5]);
  assert.equal(views[0].etaSeconds, 4);
  assert.equal(views[4].etaSeconds, 12);
  assert.deepEqual(await store.queueStats(), { depth: 5, oldestAgeSeconds: 0 });
  kv.close();
});

Deno.test("Worker.stop releases a running job back to the queue without spending an attempt", async () => {
  const { kv, store } = await setup();
  let started = false;
  const w = worker(store, {
    run: (_job, ctx) =>
      new Promise((_, reject) => {
        started = true;
        ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason));
      }),
  });
  w.start();
  const { job } = (await store.create({ type: "ingest", subject: {}, payload: {} }))!;
  await waitFor(() => started);
  await w.stop();
  const released = await store.get(job.id);
  assert.equal(released?.status, "queued");
  assert.equal(released?.attempts, 0);
  kv.close();
});

Deno.test("Worker.claimOnce runs due jobs to the end without the loop (the Deno.cron path)", async () => {
  const { kv, store } = await setup();
  const ran: string[] = [];
  const w = worker(store, {
    run(job) {
      ran.push(job.id);
      return Promise.resolve();
    },
  });
  const a = (await store.create({ type: "ingest", subject: {}, payload: {} }))!.job;
  const b = (await store.create({ type: "ingest", subject: {}, payload: {} }))!.job;
  await w.claimOnce();
  assert.deepEqual(ran.sort(), [a.id, b.id].sort());
  assert.equal((await store.get(a.id))?.status, "succeeded");
  assert.equal((await store.get(b.id))?.status, "succeeded");
  kv.close();
});
