import assert from "node:assert/strict";
import { IngestCap, StreamCaps } from "../../lib/caps.ts";
import { onStreamClose, type SseEvent, sseResponse } from "../../lib/sse.ts";
import type { JobRecord } from "../../lib/jobs.ts";
import { keys } from "../../lib/keys.ts";
import { FakeClock } from "../helpers.ts";

Deno.test("StreamCaps: per-client 429, per-process 503, idempotent release", async (t) => {
  const caps = new StreamCaps(2, 3);
  const a1 = caps.acquire("a");
  const a2 = caps.acquire("a");
  await t.step("a third stream for one client is 429 too_many_streams with Retry-After", () => {
    assert.throws(() => caps.acquire("a"), { status: 429, code: "too_many_streams" });
    try {
      caps.acquire("a");
    } catch (e) {
      assert.ok(Number((e as { headers: Record<string, string> }).headers["Retry-After"]) >= 1);
    }
  });
  const b1 = caps.acquire("b");
  await t.step("the process cap refuses everyone with 503 overloaded", () => {
    assert.throws(() => caps.acquire("c"), { status: 503, code: "overloaded" });
  });
  await t.step("release is idempotent and frees exactly one slot", () => {
    a1.release();
    a1.release();
    a1.release();
    assert.equal(caps.open, 2);
    assert.equal(caps.openFor("a"), 1);
    const c1 = caps.acquire("c");
    assert.throws(() => caps.acquire("c"), { code: "overloaded" });
    for (const s of [a2, b1, c1]) s.release();
    assert.equal(caps.open, 0);
  });
  await t.step("0 means no cap", () => {
    const open = new StreamCaps(0, 0);
    for (let i = 0; i < 100; i++) open.acquire("x");
    assert.equal(open.open, 100);
  });
});

Deno.test("a stream slot held through onStreamClose is freed when the SSE stream ends, fails or is cancelled", async (t) => {
  const caps = new StreamCaps(10, 10);
  const events = (items: SseEvent[], fail = false): AsyncIterator<SseEvent> => {
    let i = 0;
    return {
      next: () => {
        if (i < items.length) return Promise.resolve({ value: items[i++], done: false });
        return fail ? Promise.reject(new Error("boom")) : Promise.resolve({ value: undefined, done: true });
      },
    };
  };
  const held = (res: Response) => assert.ok(onStreamClose(res, caps.acquire("x").release));
  await t.step("ends", async () => {
    const res = sseResponse(events([{ event: "a", data: 1 }, { event: "b", data: 2 }]));
    held(res);
    assert.equal(caps.open, 1);
    assert.equal(await res.text(), "event: a\ndata: 1\n\nevent: b\ndata: 2\n\n");
    assert.equal(caps.open, 0);
  });
  await t.step("fails", async () => {
    const res = sseResponse(events([{ event: "a", data: 1 }], true));
    held(res);
    assert.match(await res.text(), /^event: a\ndata: 1\n\nevent: error\ndata: \{"code":"internal"/);
    assert.equal(caps.open, 0);
  });
  await t.step("cancelled by the reader (the client left)", async () => {
    const res = sseResponse({ next: () => new Promise(() => {}) });
    held(res);
    assert.equal(caps.open, 1);
    await res.body!.cancel();
    assert.equal(caps.open, 0);
  });
  await t.step("any other response holds nothing", () => {
    assert.equal(onStreamClose(new Response("plain"), () => assert.fail("must not run")), false);
  });
});

Deno.test("IngestCap: only starting an ingest takes a slot, exactly under concurrency", async (t) => {
  const kv = await Deno.openKv(":memory:");
  const clock = new FakeClock();
  const jobStatus = new Map<string, JobRecord["status"]>();
  const jobs = {
    get: (id: string) =>
      Promise.resolve(jobStatus.has(id) ? { id, status: jobStatus.get(id) } as JobRecord : null),
  };
  const deps = { kv, clock, jobs, log: { warn: () => {} } };
  const capOf = (clientId: string, cap = 3) => new IngestCap(deps, clientId, cap, 60_000);
  /** Starts job `jobId` as repo_requests does: the slot is taken in the commit that creates the job. */
  const startJob = async (cap: IngestCap, jobId: string) => {
    while (true) {
      const take = await cap.forNewJob();
      const atomic = kv.atomic().set(["job", jobId], jobId);
      take(atomic, jobId);
      if ((await atomic.commit()).ok) break;
    }
    jobStatus.set(jobId, "running");
  };
  const a = capOf("ip:a");
  try {
    await t.step("20 simultaneous new jobs with a cap of 3 → 3 started, the rest 429", async () => {
      const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => startJob(a, `j${i}`)));
      assert.equal(results.filter((r) => r.status === "fulfilled").length, 3);
      const refused = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
      assert.equal(refused.reason.status, 429);
      assert.equal(refused.reason.code, "too_many_ingests");
      assert.ok(Number(refused.reason.headers["Retry-After"]) >= 1);
    });
    const started = [...jobStatus.keys()];
    await t.step("a slot frees itself when its job ends", async () => {
      await assert.rejects(startJob(a, "j-more"), { code: "too_many_ingests" });
      jobStatus.set(started[0], "succeeded");
      await startJob(a, "j-new");
      await assert.rejects(startJob(a, "j-more"), { code: "too_many_ingests" });
    });
    await t.step("an upload holds a slot while it runs, and frees it however it ends", async () => {
      jobStatus.set(started[1], "failed");
      const answer = await a.hold(async () => {
        await assert.rejects(a.hold(() => Promise.resolve()), { code: "too_many_ingests" });
        return "ingested";
      });
      assert.equal(answer, "ingested");
      await assert.rejects(a.hold(() => Promise.reject(new Error("bad archive"))), /bad archive/);
      await startJob(a, "j-after-upload");
    });
    await t.step("a slot lapses after its ttl (a job stuck forever)", async () => {
      await assert.rejects(startJob(a, "j-late"), { code: "too_many_ingests" });
      clock.advance(61_000);
      await startJob(a, "j-late");
    });
    await t.step("other clients are not affected; the last freed slot deletes the record", async () => {
      await capOf("ip:b", 1).hold(() => Promise.resolve());
      assert.equal((await kv.get(keys.ingestSlots("ip:b"))).value, null);
    });
    await t.step("0 means no cap, and no record", async () => {
      const open = capOf("ip:c", 0);
      for (let i = 0; i < 5; i++) await startJob(open, `c${i}`);
      await open.hold(() => Promise.resolve());
      assert.equal((await kv.get(keys.ingestSlots("ip:c"))).value, null);
    });
  } finally {
    kv.close();
  }
});
