import assert from "node:assert/strict";
import { acquireIngestSlot, StreamCaps } from "../../lib/caps.ts";
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
    await assert.rejects(res.text());
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

Deno.test("acquireIngestSlot caps running ingests per client, exactly under concurrency", async (t) => {
  const kv = await Deno.openKv(":memory:");
  const clock = new FakeClock();
  const jobStatus = new Map<string, JobRecord["status"]>();
  const jobs = {
    get: (id: string) =>
      Promise.resolve(jobStatus.has(id) ? { id, status: jobStatus.get(id) } as JobRecord : null),
  };
  const deps = { kv, clock, jobs };
  try {
    await t.step("20 simultaneous requests with a cap of 3 → 3 slots", async () => {
      const results = await Promise.allSettled(
        Array.from({ length: 20 }, (_, i) => acquireIngestSlot(deps, "ip:a", 3, `t${i}`, 60_000)),
      );
      const held = results.filter((r) => r.status === "fulfilled");
      assert.equal(held.length, 3);
      const refused = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
      assert.equal(refused.reason.status, 429);
      assert.equal(refused.reason.code, "too_many_ingests");
      // bind two to running jobs, release the third (its request made no job)
      const slots = held.map((r) =>
        (r as PromiseFulfilledResult<Awaited<ReturnType<typeof acquireIngestSlot>>>).value
      );
      jobStatus.set("j1", "running");
      jobStatus.set("j2", "queued");
      await slots[0].bindJob("j1");
      await slots[1].bindJob("j2");
      await slots[2].release();
    });
    await t.step("a freed slot can be taken; the cap holds again after", async () => {
      const s = await acquireIngestSlot(deps, "ip:a", 3, "t-new", 60_000);
      await assert.rejects(acquireIngestSlot(deps, "ip:a", 3, "t-more", 60_000), {
        code: "too_many_ingests",
      });
      await s.release();
    });
    await t.step("a slot frees itself when its job ends", async () => {
      await acquireIngestSlot(deps, "ip:a", 3, "t3", 60_000);
      await assert.rejects(acquireIngestSlot(deps, "ip:a", 3, "t4", 60_000));
      jobStatus.set("j1", "succeeded");
      await acquireIngestSlot(deps, "ip:a", 3, "t4", 60_000);
    });
    await t.step("a slot lapses after its ttl (a crashed request)", async () => {
      await assert.rejects(acquireIngestSlot(deps, "ip:a", 3, "t5", 60_000));
      clock.advance(61_000);
      await acquireIngestSlot(deps, "ip:a", 3, "t5", 60_000);
    });
    await t.step("other clients are not affected; releasing the last slot deletes the record", async () => {
      const s = await acquireIngestSlot(deps, "ip:b", 1, "b1", 60_000);
      await s.release();
      assert.equal((await kv.get(keys.ingestSlots("ip:b"))).value, null);
    });
  } finally {
    kv.close();
  }
});
