import assert from "node:assert/strict";
import { FakeClock, parseSse, postJson, readSse, startTestApp, waitFor, waitForJob } from "../helpers.ts";
import { startModelWorld, uploadRepo } from "../model_fixtures.ts";
import type { ArtifactRecord } from "../../lib/artifacts.ts";
import { keys } from "../../lib/keys.ts";

type Artifact = {
  id: string;
  status: string;
  content?: string;
  model: string;
  offline: boolean;
  error?: { code: string; message: string };
};

async function ask(
  world: Awaited<ReturnType<typeof startModelWorld>>,
  body: Record<string, unknown> = { kind: "overview" },
) {
  return await world.app.json<{ artifact: Artifact; job?: { id: string } }>(
    `/api/repos/${world.repoId}/artifacts`,
    postJson(body),
  );
}

/** Reads a stream's delta texts and final event. */
async function collect(res: Response) {
  const events = await readSse(res);
  const deltas = events.filter((e) => e.event === "delta");
  return {
    text: deltas.map((e) => (e.data as { text: string }).text).join(""),
    ids: deltas.map((e) => Number(e.id)),
    last: events[events.length - 1],
  };
}

Deno.test("artifacts: 200 concurrent viewers of one new artifact cost one model call and all get the same text", async () => {
  const world = await startModelWorld({ tokens: 120, delayMs: 3 });
  try {
    const asks = await Promise.all(Array.from({ length: 20 }, () => ask(world)));
    const ids = new Set(asks.map((a) => a.body.artifact.id));
    assert.equal(ids.size, 1);
    const id = [...ids][0];
    const viewers = await Promise.all(
      Array.from({ length: 200 }, () => world.app.fetch(`/api/artifacts/${id}/stream`)),
    );
    const results = await Promise.all(viewers.map(collect));
    const final = await world.app.json<Artifact>(`/api/artifacts/${id}`);
    assert.equal(final.body.status, "done");
    assert.ok(final.body.content!.split(" ").length >= 120);
    for (const r of results) {
      assert.equal(r.text, final.body.content);
      assert.equal(r.last.event, "done");
      assert.deepEqual(r.ids, r.ids.map((_, i) => i + 1), "sequence numbers run 1..n without gaps");
    }
    assert.equal(world.llm.calls.chat, 1);

    const late = await collect(await world.app.fetch(`/api/artifacts/${id}/stream`));
    assert.equal(late.text, final.body.content, "a late joiner gets the full text");
    const again = await ask(world);
    assert.equal(again.status, 200);
    assert.equal(again.body.artifact.content, final.body.content);
    assert.equal(world.llm.calls.chat, 1, "asking again later costs nothing");
  } finally {
    await world.close();
  }
});

Deno.test("artifacts: resuming with Last-Event-ID or ?from has no gap and no duplicate", async () => {
  const world = await startModelWorld({ tokens: 200, delayMs: 5 });
  try {
    const { body } = await ask(world, { kind: "slides" });
    const id = body.artifact.id;
    const res = await world.app.fetch(`/api/artifacts/${id}/stream`);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "";
    while (parseSse(seen).filter((e) => e.event === "delta").length < 3) {
      seen += (await reader.read()).value ?? "";
    }
    await reader.cancel();
    const firstPart = parseSse(seen.slice(0, seen.lastIndexOf("\n\n") + 2)).filter((e) =>
      e.event === "delta"
    );
    const lastId = firstPart[firstPart.length - 1].id!;
    const rest = await collect(
      await world.app.fetch(`/api/artifacts/${id}/stream`, { headers: { "Last-Event-ID": lastId } }),
    );
    const viaQuery = await collect(await world.app.fetch(`/api/artifacts/${id}/stream?from=${lastId}`));
    const full = (await world.app.json<Artifact>(`/api/artifacts/${id}`)).body.content;
    const head = firstPart.map((e) => (e.data as { text: string }).text).join("");
    assert.equal(head + rest.text, full);
    assert.equal(head + viaQuery.text, full);
    assert.equal(rest.ids[0], Number(lastId) + 1);
  } finally {
    await world.close();
  }
});

Deno.test("artifacts: a viewer that never reads does not delay the others", async () => {
  const world = await startModelWorld({ tokens: 300, delayMs: 2 });
  try {
    const { body } = await ask(world, { kind: "podcast" });
    const stalled = await world.app.fetch(`/api/artifacts/${body.artifact.id}/stream`);
    const reader = stalled.body!.getReader();
    await reader.read();
    const others = await Promise.all(
      Array.from({ length: 5 }, () => world.app.fetch(`/api/artifacts/${body.artifact.id}/stream`)),
    );
    const results = await Promise.all(others.map(collect));
    for (const r of results) assert.equal(r.last.event, "done");
    await reader.cancel();
  } finally {
    await world.close();
  }
});

Deno.test("artifacts: transient model faults are retried before any text is published", async (t) => {
  for (const fault of ["429", "500", "hang"] as const) {
    await t.step(fault, async () => {
      const world = await startModelWorld({ tokens: 30, faults: [fault], retryAfterSec: 1 }, {
        LLM_TIMEOUT: "1s",
      });
      try {
        const { body } = await ask(world);
        const r = await collect(await world.app.fetch(`/api/artifacts/${body.artifact.id}/stream`));
        assert.equal(r.last.event, "done");
        assert.equal(world.llm.calls.chat, 2, "one failed call, one retry");
        assert.ok(r.text.startsWith("Answer "));
      } finally {
        await world.close();
      }
    });
  }
});

Deno.test("artifacts: a fault after text was shown ends viewers with event: error, and the artifact can be asked for again", async (t) => {
  for (const fault of ["drop", "malformed"] as const) {
    await t.step(fault, async () => {
      // the job may be tried 4 times, but text was shown: a new model call could not take it back
      const world = await startModelWorld({ tokens: 40, faults: [fault] });
      try {
        const first = await ask(world);
        const r = await collect(await world.app.fetch(`/api/artifacts/${first.body.artifact.id}/stream`));
        assert.equal(r.last.event, "error");
        assert.equal((r.last.data as { code: string }).code, "generation_interrupted");
        assert.equal(world.llm.calls.chat, 1, "no second model call for the failed job");
        const failed = await world.app.json<Artifact>(`/api/artifacts/${first.body.artifact.id}`);
        assert.equal(failed.body.status, "failed");
        assert.equal(failed.body.error?.code, "generation_interrupted");
        const record = await world.app.deps.kv.get<ArtifactRecord>(keys.artifact(first.body.artifact.id));
        assert.ok(record.value!.textSeq > 0, "text was shown before the fault");
        assert.equal(
          r.last.id,
          String(record.value!.textSeq),
          "the error event carries the failed text's seq",
        );
        assert.equal(r.last.id, String(r.ids[r.ids.length - 1]));
        const again = await ask(world);
        assert.equal(again.status, 202);
        assert.equal(again.body.artifact.id, first.body.artifact.id);
        const r2 = await collect(await world.app.fetch(`/api/artifacts/${first.body.artifact.id}/stream`));
        assert.equal(r2.last.event, "done");
        const done = await world.app.json<Artifact>(`/api/artifacts/${first.body.artifact.id}`);
        assert.equal(
          r2.text,
          done.body.content,
          "the new generation's text, nothing left over from the failed one",
        );
      } finally {
        await world.close();
      }
    });
  }
});

Deno.test("artifacts: a model that refuses the API key fails the artifact at once, after one call", async () => {
  const world = await startModelWorld({ apiKey: "another-key" });
  try {
    const { body } = await ask(world);
    const job = await waitForJob(world.app, body.job!.id);
    assert.equal(job.status, "failed");
    assert.equal(
      world.llm.calls.refused,
      1,
      "one model call: a refusal is not retried by the call or the job",
    );
    const art = (await world.app.json<Artifact>(`/api/artifacts/${body.artifact.id}`)).body;
    assert.equal(art.status, "failed");
    assert.equal(art.error?.code, "llm_failed");
    assert.match(art.error?.message ?? "", /refused the API key/);
  } finally {
    await world.close();
  }
});

Deno.test("artifacts: a viewer whose artifact is gone ends with event: error carrying the last id it was sent", async () => {
  // a token every 800 ms, each its own batch: the record is deleted between two of them
  const world = await startModelWorld({ tokens: 3, delayMs: 800 });
  try {
    const { body } = await ask(world);
    const res = await world.app.fetch(`/api/artifacts/${body.artifact.id}/stream`);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!parseSse(text).some((e) => e.event === "delta")) {
      const { value, done } = await reader.read();
      assert.ok(!done, "the stream ended before any text");
      text += value;
    }
    await world.app.deps.kv.delete(keys.artifact(body.artifact.id));
    for (let next = await reader.read(); !next.done; next = await reader.read()) text += next.value;
    const events = parseSse(text);
    const deltas = events.filter((e) => e.event === "delta");
    const last = events[events.length - 1];
    assert.equal(last.event, "error");
    assert.equal((last.data as { code: string }).code, "not_found");
    assert.equal(last.id, deltas[deltas.length - 1].id);
  } finally {
    await world.close();
  }
});

Deno.test("artifacts: the circuit opens after repeated failures, answers 503 with Retry-After, and recovers", async () => {
  const world = await startModelWorld(
    { tokens: 20, fail: "500" },
    { CIRCUIT_THRESHOLD: "2", CIRCUIT_COOLDOWN: "1s", LLM_MAX_RETRIES: "1", JOB_MAX_ATTEMPTS: "1" },
  );
  try {
    const first = await ask(world);
    const r = await collect(await world.app.fetch(`/api/artifacts/${first.body.artifact.id}/stream`));
    assert.equal(r.last.event, "error");
    assert.equal(world.llm.calls.chat, 2);
    const refused = await ask(world, { kind: "slides" });
    assert.equal(refused.status, 503);
    assert.equal((refused.body as unknown as { error: { code: string } }).error.code, "llm_unavailable");
    assert.ok(Number(refused.res.headers.get("retry-after")) >= 1);
    assert.equal(world.llm.calls.chat, 2, "no call while open");
    world.llm.setOptions({ fail: undefined });
    const probe = await waitFor(
      async () => {
        const a = await ask(world, { kind: "slides" });
        return a.status === 202 ? a : null;
      },
      5000,
      "the circuit to half-open",
    );
    const done = await collect(await world.app.fetch(`/api/artifacts/${probe.body.artifact.id}/stream`));
    assert.equal(done.last.event, "done");
    assert.equal(await world.app.deps.models.circuit.state(), "closed");
  } finally {
    await world.close();
  }
});

Deno.test("artifacts: podcast audio is served with Range when speech is configured", async () => {
  const world = await startModelWorld({ tokens: 20 }, {
    TTS_MODEL: "fake-tts",
    TTS_VOICES: "alloy,echo",
  });
  try {
    const { body } = await ask(world, { kind: "podcast" });
    await collect(await world.app.fetch(`/api/artifacts/${body.artifact.id}/stream`));
    const audio = await waitFor(async () => {
      const res = await world.app.fetch(`/api/artifacts/${body.artifact.id}/audio`);
      if (res.status === 200) return res;
      await res.body?.cancel();
      return null;
    });
    assert.equal(audio.headers.get("content-type"), "audio/mpeg");
    const bytes = new Uint8Array(await audio.arrayBuffer());
    assert.ok(bytes.byteLength > 100);
    assert.ok(world.llm.calls.speech >= 1);
    const size = bytes.byteLength;
    // [Range, status, Content-Range, the bytes served]; null: the whole file, as if no Range were sent
    const cases: [string, number, string | null, Uint8Array][] = [
      ["bytes=10-19", 206, `bytes 10-19/${size}`, bytes.subarray(10, 20)],
      ["bytes=0-99", 206, `bytes 0-99/${size}`, bytes.subarray(0, 100)],
      ["bytes=100-", 206, `bytes 100-${size - 1}/${size}`, bytes.subarray(100)],
      ["bytes=-100", 206, `bytes ${size - 100}-${size - 1}/${size}`, bytes.subarray(size - 100)],
      ["bytes=0-999999", 206, `bytes 0-${size - 1}/${size}`, bytes],
      ["Bytes=0-5", 206, `bytes 0-5/${size}`, bytes.subarray(0, 6)],
      // RFC 9110 §14.2: an unknown unit, an invalid range and (our choice) several ranges are ignored
      ["items=0-5", 200, null, bytes],
      ["bytes=5-2", 200, null, bytes],
      ["bytes=0-1,4-5", 200, null, bytes],
    ];
    for (const [range, status, contentRange, expected] of cases) {
      const res = await world.app.fetch(`/api/artifacts/${body.artifact.id}/audio`, { headers: { range } });
      assert.equal(res.status, status, range);
      assert.equal(res.headers.get("content-type"), "audio/mpeg", range);
      assert.equal(res.headers.get("accept-ranges"), "bytes", range);
      assert.equal(res.headers.get("content-range"), contentRange, range);
      assert.equal(res.headers.get("content-length"), String(expected.byteLength), range);
      assert.deepEqual(new Uint8Array(await res.arrayBuffer()), expected, range);
    }
    // If-Range: the range only for the same audio (its ETag), else the whole file
    const etag = audio.headers.get("etag")!;
    assert.ok(etag);
    for (
      const [ifRange, status] of [[etag, 206], ['"0-1"', 200], [
        "Sat, 01 Jan 2000 00:00:00 GMT",
        200,
      ]] as const
    ) {
      const res = await world.app.fetch(`/api/artifacts/${body.artifact.id}/audio`, {
        headers: { range: "bytes=0-9", "if-range": ifRange },
      });
      assert.equal(res.status, status, ifRange);
      assert.equal((await res.arrayBuffer()).byteLength, status === 206 ? 10 : size, ifRange);
    }
    for (const range of ["bytes=999999-", `bytes=${size}-${size + 10}`, "bytes=-0"]) {
      const bad = await world.app.fetch(`/api/artifacts/${body.artifact.id}/audio`, { headers: { range } });
      assert.equal(bad.status, 416, range);
      assert.equal(bad.headers.get("content-range"), `bytes */${size}`, range);
      assert.match(bad.headers.get("content-type") ?? "", /^application\/json/, range);
      const error = (await bad.json() as { error: { code: string; message: string } }).error;
      assert.equal(error.code, "range_not_satisfiable", range);
      assert.ok(error.message, range);
    }
  } finally {
    await world.close();
  }
});

Deno.test("artifacts: podcast audio cut off by the job's timeout is made by the retried job, or marked failed by the last", async (t) => {
  // the script is written at once; the first speech call hangs until the 2 s job timeout stops it
  const env = { TTS_MODEL: "fake-tts", TTS_VOICES: "alloy,echo", JOB_TIMEOUT: "2s", LLM_TIMEOUT: "10s" };
  const podcast = async (world: Awaited<ReturnType<typeof startModelWorld>>) => {
    const { body } = await ask(world, { kind: "podcast" });
    await waitFor(() => world.llm.calls.speech > 0, 10_000, "the first speech call");
    const slots = await world.app.deps.models.budget.inFlight();
    const job = await waitForJob(world.app, body.job!.id);
    const art =
      (await world.app.json<Artifact & { audio: string }>(`/api/artifacts/${body.artifact.id}`)).body;
    const audio = await world.app.fetch(`/api/artifacts/${body.artifact.id}/audio`);
    assert.equal(await world.app.deps.models.budget.inFlight(), 0, "the job freed its model slots");
    return { job, art, audio, slots };
  };

  await t.step("the retry speaks the script", async () => {
    const world = await startModelWorld({ tokens: 20, speechFaults: ["hang"] }, env);
    try {
      const { job, art, audio, slots } = await podcast(world);
      assert.equal(slots, 1, "the speech call holds a slot of the model budget");
      assert.equal(job.status, "succeeded");
      assert.equal(art.status, "done");
      assert.equal(art.audio, "ready");
      assert.equal(audio.status, 200);
      assert.ok((await audio.arrayBuffer()).byteLength > 100);
      assert.equal(world.llm.calls.chat, 1, "the script is not written again");
      assert.equal(world.llm.calls.speech, 2);
    } finally {
      await world.close();
    }
  });

  await t.step("after the last attempt the audio is failed, not generating", async () => {
    const world = await startModelWorld({ tokens: 20, speechFaults: [{ mode: "hang", times: 10 }] }, {
      ...env,
      JOB_MAX_ATTEMPTS: "1",
    });
    try {
      const { job, art, audio } = await podcast(world);
      assert.equal(job.status, "failed");
      assert.equal(art.status, "done", "the script is still served");
      assert.equal(art.audio, "failed");
      assert.equal(audio.status, 404);
      const error = (await audio.json() as { error: { code: string; message: string } }).error;
      assert.equal(error.code, "audio_unavailable");
      assert.doesNotMatch(error.message, /still being made/);
    } finally {
      await world.close();
    }
  });
});

Deno.test("artifacts: a transient speech failure is retried like a model call", async (t) => {
  // "hang": the headers come, the body never does; the body is limited by LLM_TIMEOUT too
  for (const fault of ["500", "hang"] as const) {
    await t.step(fault, async () => {
      const world = await startModelWorld({ tokens: 20, speechFaults: [fault] }, {
        TTS_MODEL: "fake-tts",
        TTS_VOICES: "alloy,echo",
        LLM_TIMEOUT: "1s",
      });
      try {
        const { body } = await ask(world, { kind: "podcast" });
        const job = await waitForJob(world.app, body.job!.id);
        assert.equal(job.status, "succeeded");
        const art = (await world.app.json<Artifact & { audio: string }>(`/api/artifacts/${body.artifact.id}`))
          .body;
        assert.equal(art.audio, "ready");
        assert.equal(world.llm.calls.speech, 2, "one failed call, one retry");
      } finally {
        await world.close();
      }
    });
  }
});

Deno.test("artifacts: a speech outage opens only speech's circuit; text generation goes on", async () => {
  const world = await startModelWorld({ tokens: 20, speechFaults: [{ mode: "500", times: 100 }] }, {
    TTS_MODEL: "fake-tts",
    TTS_VOICES: "alloy,echo",
    CIRCUIT_THRESHOLD: "2",
    JOB_MAX_ATTEMPTS: "1",
  });
  try {
    const podcast = await ask(world, { kind: "podcast" });
    await waitForJob(world.app, podcast.body.job!.id);
    const art =
      (await world.app.json<Artifact & { audio: string }>(`/api/artifacts/${podcast.body.artifact.id}`))
        .body;
    assert.equal(art.audio, "failed");
    assert.ok(world.llm.calls.speech >= 2, "speech failed often enough to open a circuit");
    const health = (await world.app.json<{ llm: { circuit: string } }>("/health")).body;
    assert.equal(health.llm.circuit, "closed", "the text model's circuit");
    const overview = await ask(world, { kind: "overview" });
    assert.equal((await waitForJob(world.app, overview.body.job!.id)).status, "succeeded");
  } finally {
    await world.close();
  }
});

Deno.test("artifacts: bad requests get API.md errors", async () => {
  const world = await startModelWorld();
  try {
    const cases: [unknown, number, string][] = [
      [{ kind: "poem" }, 400, "invalid_request"],
      [{ kind: "concepts" }, 400, "invalid_request"],
      [{ kind: "overview", concept: "x" }, 400, "invalid_request"],
      [{ kind: "overview", extra: 1 }, 400, "invalid_request"],
    ];
    for (const [body, status, code] of cases) {
      const res = await world.app.json<{ error: { code: string } }>(
        `/api/repos/${world.repoId}/artifacts`,
        postJson(body),
      );
      assert.equal(res.status, status, JSON.stringify(body));
      assert.equal(res.body.error.code, code);
    }
    const missing = await world.app.json<{ error: { code: string } }>(
      `/api/repos/nope/artifacts`,
      postJson({ kind: "overview" }),
    );
    assert.equal(missing.status, 404);
    const noAudio = await world.app.json<{ error: { code: string } }>(`/api/artifacts/nope/audio`);
    assert.equal(noAudio.status, 404);
    assert.equal(world.llm.calls.chat, 0);
  } finally {
    await world.close();
  }
});

Deno.test("artifacts: with LLM_FALLBACK=offline an open circuit serves offline artifacts instead of 503", async () => {
  const world = await startModelWorld(
    { tokens: 20, fail: "500" },
    {
      CIRCUIT_THRESHOLD: "1",
      CIRCUIT_COOLDOWN: "60s",
      LLM_MAX_RETRIES: "0",
      JOB_MAX_ATTEMPTS: "1",
      LLM_FALLBACK: "offline",
    },
  );
  try {
    const first = await ask(world);
    assert.equal(
      (await collect(await world.app.fetch(`/api/artifacts/${first.body.artifact.id}/stream`))).last.event,
      "error",
    );
    const fallback = await ask(world);
    assert.equal(fallback.status, 202);
    assert.equal(fallback.body.artifact.offline, true);
    assert.equal(fallback.body.artifact.model, "offline");
    assert.notEqual(
      fallback.body.artifact.id,
      first.body.artifact.id,
      "a different model is a different artifact",
    );
    const r = await collect(await world.app.fetch(`/api/artifacts/${fallback.body.artifact.id}/stream`));
    assert.equal(r.last.event, "done");
    assert.match(r.text, /Widget/);
    assert.equal(world.llm.calls.chat, 1);
  } finally {
    await world.close();
  }
});

Deno.test("artifacts: without an API key every kind is written offline from the repository", async () => {
  const app = await startTestApp();
  try {
    const repoId = await uploadRepo(app);
    for (const kind of ["overview", "slides", "podcast"]) {
      const asked = await app.json<{ artifact: Artifact }>(
        `/api/repos/${repoId}/artifacts`,
        postJson({ kind }),
      );
      assert.equal(asked.body.artifact.offline, true);
      const r = await collect(await app.fetch(`/api/artifacts/${asked.body.artifact.id}/stream`));
      assert.equal(r.last.event, "done", kind);
      assert.match(r.text, /widget/i, kind);
    }
    const concept = await app.json<{ artifact: Artifact }>(
      `/api/repos/${repoId}/artifacts`,
      postJson({ kind: "concepts", concept: "parseWidget" }),
    );
    const r = await collect(await app.fetch(`/api/artifacts/${concept.body.artifact.id}/stream`));
    assert.match(r.text, /\[src\/parser\.js:\d+-\d+\]/, "concepts cite real lines");
    const audio = await app.json<{ error: { code: string } }>(
      `/api/artifacts/${concept.body.artifact.id}/audio`,
    );
    assert.equal(audio.body.error.code, "audio_unavailable");
  } finally {
    await app.close();
  }
});

Deno.test("artifacts: the daily token quota refuses new generations and chat, but finished artifacts are still served", async () => {
  const world = await startModelWorld({ tokens: 30 }, { QUOTA_DAILY_TOKENS: "100" });
  try {
    const first = await ask(world);
    assert.equal(first.status, 202);
    await collect(await world.app.fetch(`/api/artifacts/${first.body.artifact.id}/stream`));
    const usage = await world.app.json<{ quota: { tokensUsed: number; tokensLimit: number } }>("/api/usage");
    assert.ok(usage.body.quota.tokensUsed > 100, "settled to what the model reported");
    assert.ok(usage.body.quota.tokensUsed < 5_000, "the estimate was replaced by the actual use");
    const refused = await ask(world, { kind: "slides" });
    assert.equal(refused.status, 429);
    assert.equal((refused.body as unknown as { error: { code: string } }).error.code, "quota_exceeded");
    const chat = await world.app.json<{ error: { code: string } }>(
      `/api/repos/${world.repoId}/chat`,
      postJson({ messages: [{ role: "user", content: "hi" }] }),
    );
    assert.equal(chat.status, 429);
    assert.equal(chat.body.error.code, "quota_exceeded");
    const again = await ask(world);
    assert.equal(again.status, 200, "a finished artifact costs nothing");
    assert.equal(world.llm.calls.chat, 1);
  } finally {
    await world.close();
  }
});

Deno.test("artifacts: an artifact expires with the repo's TTL and is made again when asked for after that", async () => {
  const clock = new FakeClock(Date.now());
  const app = await startTestApp({ clock, env: { REPO_TTL: "1h" } });
  try {
    const repoId = await uploadRepo(app);
    const first = await app.json<{ artifact: Artifact }>(
      `/api/repos/${repoId}/artifacts`,
      postJson({ kind: "overview" }),
    );
    assert.equal(
      (await collect(await app.fetch(`/api/artifacts/${first.body.artifact.id}/stream`))).last.event,
      "done",
    );
    clock.advance(30 * 60_000);
    assert.equal((await app.json(`/api/artifacts/${first.body.artifact.id}`)).status, 200);
    clock.advance(31 * 60_000);
    assert.equal((await app.json(`/api/artifacts/${first.body.artifact.id}`)).status, 404, "expired");
    assert.equal((await app.fetch(`/api/artifacts/${first.body.artifact.id}/stream`)).status, 404);
  } finally {
    await app.close();
  }
});
