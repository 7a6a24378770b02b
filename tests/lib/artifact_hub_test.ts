import assert from "node:assert/strict";
import { ArtifactHub, DELIVERIES_PER_SECOND } from "../../lib/artifact_hub.ts";
import { keys } from "../../lib/keys.ts";

/**
 * Writes the record's textSeq every 5 ms for `ms` while one viewer of `viewers` waits on the hub,
 * and returns when each change was published to viewers (ms since the first write).
 */
async function publishTimes(viewers: number, ms: number): Promise<{ times: number[]; lastSeq: number }> {
  const kv = await Deno.openKv(":memory:");
  const hub = new ArtifactHub(kv);
  const id = "art";
  const record = { id, status: "generating", gen: 1, textSeq: 0, expiresAt: Date.now() + 60_000 };
  await kv.set(keys.artifact(id), record);
  const joined = Array.from({ length: viewers }, () => hub.join(id));
  const live = joined[0].live;
  await live.ready();
  const start = performance.now();
  const times: number[] = [];
  let writing = true;
  const writer = (async () => {
    for (let seq = 1; performance.now() - start < ms; seq++) {
      await kv.set(keys.artifact(id), { ...record, textSeq: seq });
      await new Promise((r) => setTimeout(r, 5));
    }
    writing = false;
  })();
  while (writing) {
    await Promise.race([live.changed(), writer]);
    if (writing) times.push(performance.now() - start);
  }
  await writer;
  for (const { leave } of joined) leave();
  kv.close();
  return { times, lastSeq: live.record!.textSeq };
}

Deno.test("the hub publishes changes at once to a few viewers and paced to many (one write per viewer per publish)", async (t) => {
  await t.step("10 viewers: changes go out as they come", async () => {
    const { times } = await publishTimes(10, 400);
    assert.ok(times.length >= 20, `${times.length} publishes in 400 ms of writes every 5 ms`);
  });
  await t.step(
    "10,000 viewers: at most one publish per viewers / DELIVERIES_PER_SECOND, each with everything written so far",
    async () => {
      const paceMs = (10_000 * 1000) / DELIVERIES_PER_SECOND;
      assert.ok(paceMs >= 100, `a pace of ${paceMs} ms is too short to tell from the writes every 5 ms`);
      const writingMs = 3.5 * paceMs;
      const { times, lastSeq } = await publishTimes(10_000, writingMs);
      assert.ok(times.length >= 2, `${times.length} publishes`);
      // Publishes start a pace apart; a viewer sees each once its batches are read, a few ms later
      // or, on a busy machine, more. So the exact check is the count; single gaps get a margin.
      assert.ok(
        times.length <= Math.floor(writingMs / paceMs) + 1,
        `${times.length} publishes in ${writingMs} ms at one per ${paceMs} ms`,
      );
      for (let i = 1; i < times.length; i++) {
        assert.ok(
          times[i] - times[i - 1] >= paceMs / 2,
          `publishes ${i - 1} and ${i} were ${times[i] - times[i - 1]} ms apart`,
        );
      }
      assert.ok(lastSeq > times.length, `batches ${lastSeq} went out in ${times.length} publishes`);
    },
  );
});

/** `kv`, except that the first `get` of a key that `matches` fails, as a local KV file locked by another process can. */
function failingFirstRead(kv: Deno.Kv, matches: (key: Deno.KvKey) => boolean): Deno.Kv {
  let failures = 1;
  return new Proxy(kv, {
    get(target, name) {
      if (name !== "get") {
        const value = Reflect.get(target, name, target);
        return typeof value === "function" ? value.bind(target) : value;
      }
      return (key: Deno.KvKey) =>
        matches(key) && failures-- > 0 ? Promise.reject(new Error("database is locked")) : target.get(key);
    },
  });
}

Deno.test("a failed batch read is not kept: the next viewer asking reads the batch again", async () => {
  const kv = await Deno.openKv(":memory:");
  const id = "art";
  await kv.set(keys.artifact(id), {
    id,
    status: "generating",
    gen: 1,
    textSeq: 1,
    expiresAt: Date.now() + 60_000,
  });
  await kv.set(keys.artifactText(id, 1, 1), "hello");
  // the first read of the text fails, as a local KV file locked by another process can
  const hub = new ArtifactHub(failingFirstRead(kv, (key) => key[0] === "artifact_text"));
  const { live, leave } = hub.join(id);
  try {
    await live.ready();
    await assert.rejects(live.deltaEvent(1, 1), /database is locked/);
    const framed = await live.deltaEvent(1, 1);
    assert.match(new TextDecoder().decode(framed!), /^id: 1\nevent: delta\ndata: \{"text":"hello"\}/);
  } finally {
    leave();
    kv.close();
  }
});

Deno.test("viewers are woken with every new batch already read, so one write takes them all", async (t) => {
  const id = "art";
  const record = { id, status: "generating", gen: 1, textSeq: 1, expiresAt: Date.now() + 60_000 };
  /** Commits batches 2–4 at once (as a paced publish finds them) and waits until they are published. */
  async function publishThree(kv: Deno.Kv, hub: ArtifactHub) {
    await kv.set(keys.artifactText(id, 1, 1), "a");
    await kv.set(keys.artifact(id), record);
    const joined = hub.join(id);
    await joined.live.ready();
    await kv.atomic()
      .set(keys.artifactText(id, 1, 2), "b")
      .set(keys.artifactText(id, 1, 3), "c")
      .set(keys.artifactText(id, 1, 4), "d")
      .set(keys.artifact(id), { ...record, textSeq: 4 })
      .commit();
    while (joined.live.record!.textSeq < 4) await joined.live.changed();
    return joined;
  }

  await t.step("the woken viewer's next write holds batches 2, 3 and 4", async () => {
    const kv = await Deno.openKv(":memory:");
    const { live, leave } = await publishThree(kv, new ArtifactHub(kv));
    try {
      const ready = live.readyDeltaEvents(1, 2, 4);
      assert.ok(ready, "the new batches were not read before the viewers were woken");
      assert.equal(ready.last, 4);
      const texts = [...new TextDecoder().decode(ready.bytes).matchAll(/"text":"(\w)"/g)].map((m) => m[1]);
      assert.deepEqual(texts, ["b", "c", "d"]);
    } finally {
      leave();
      kv.close();
    }
  });

  await t.step("a failed read does not hold the publish back: viewers read again themselves", async () => {
    const kv = await Deno.openKv(":memory:");
    const flaky = failingFirstRead(kv, (key) => key[0] === "artifact_text" && key[3] === 3);
    const { live, leave } = await publishThree(kv, new ArtifactHub(flaky));
    try {
      assert.equal(live.readyDeltaEvents(1, 2, 4)?.last, 2, "the run stops before the batch that failed");
      const rest = await live.deltaEvents(1, 3, 4);
      assert.equal(rest?.last, 4);
    } finally {
      leave();
      kv.close();
    }
  });
});

Deno.test("the final event is framed once and handed out a macrotask later, after the final text of that turn", async () => {
  const kv = await Deno.openKv(":memory:");
  const id = "art";
  const record = { id, status: "done", gen: 1, textSeq: 3, expiresAt: Date.now() + 60_000 };
  await kv.set(keys.artifact(id), record);
  const hub = new ArtifactHub(kv);
  const viewers = Array.from({ length: 3 }, () => hub.join(id));
  const { live } = viewers[0];
  try {
    await live.ready();
    let framed = 0;
    const make = () => (framed++, { id: 3, event: "done", data: { id } });
    const handedOut: Uint8Array[] = [];
    const finals = viewers.map(() =>
      live.finalEvent(live.record!, make).then((bytes) => handedOut.push(bytes))
    );
    for (let i = 0; i < 50; i++) await null; // 50 rounds of microtasks: still the same turn of the event loop
    assert.equal(handedOut.length, 0, "the final event went out in the same turn as the final text");
    await Promise.all(finals);
    assert.equal(framed, 1);
    assert.equal(new Set(handedOut).size, 1, "every viewer is sent the same bytes");
    assert.match(new TextDecoder().decode(handedOut[0]), /^id: 3\nevent: done\n/);
  } finally {
    for (const { leave } of viewers) leave();
    kv.close();
  }
});
