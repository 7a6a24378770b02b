import assert from "node:assert/strict";
import { type AppProcess, startAppProcess } from "../bench/app_process.ts";
import { buildTarGz } from "./fakes/archives.ts";
import { fakeReplyText, startFakeOpenAI } from "./fakes/openai.ts";
import { parseSse, waitFor } from "./helpers.ts";
import { SAMPLE_REPO } from "./model_fixtures.ts";

/** Uploads the sample repo and asks for an artifact of `kind`; returns the artifact's id. */
async function askFor(app: AppProcess, kind: string): Promise<string> {
  const form = new FormData();
  form.append("file", new Blob([await buildTarGz(SAMPLE_REPO)]), "repo.tar.gz");
  const repo =
    (await (await fetch(`${app.url}/api/repos/upload`, { method: "POST", body: form })).json()).repo;
  const asked = await (await fetch(`${app.url}/api/repos/${repo.id}/artifacts`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ kind }),
  })).json();
  return asked.artifact.id;
}

/** Waits for the artifact to settle (done with its audio settled, or failed) and returns it. */
function settled(app: AppProcess, id: string, what: string) {
  return waitFor(
    async () => {
      const a = await (await fetch(`${app.url}/api/artifacts/${id}`)).json();
      return (a.status === "done" && a.audio !== "generating") || a.status === "failed" ? a : null;
    },
    30_000,
    what,
  );
}

Deno.test("generation survives kill -9: after a restart the artifact completes with no duplicated text", async () => {
  const llm = await startFakeOpenAI({ apiKey: "k", tokens: 300, delayMs: 15 });
  const env = { OPENAI_API_KEY: "k", OPENAI_BASE_URL: llm.baseUrl, LLM_MODEL: "fake-model", JOB_LEASE: "2s" };
  // the test owns the KV folder: the first process is killed, and a killed process removes nothing
  const kvDir = await Deno.makeTempDir({ prefix: "repolm-" });
  let app = await startAppProcess(env, { kvPath: `${kvDir}/repolm.kv` });
  try {
    const id = await askFor(app, "overview");
    const stream = await fetch(`${app.url}/api/artifacts/${id}/stream`);
    const reader = stream.body!.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "";
    while (parseSse(seen).filter((e) => e.event === "delta").length < 5) {
      seen += (await reader.read()).value ?? "";
    }
    await app.kill();
    await reader.cancel().catch(() => {});

    app = await startAppProcess(env, { kvPath: app.kvPath });
    const final = await settled(app, id, "the artifact to finish after the restart");
    assert.equal(final.status, "done");
    const expected = fakeReplyText(llm.calls.log[0].messages!, 300);
    assert.equal(final.content, expected, "exactly the model's text: nothing lost, nothing repeated");
    assert.equal(llm.calls.chat, 2, "the retry called the model once more");
    const replay = parseSse(await (await fetch(`${app.url}/api/artifacts/${id}/stream`)).text());
    assert.equal(
      replay.filter((e) => e.event === "delta").map((e) => (e.data as { text: string }).text).join(""),
      expected,
    );
  } finally {
    await app.kill();
    await llm.close();
    await Deno.remove(kvDir, { recursive: true });
  }
});

Deno.test("podcast audio survives kill -9 during speech: after a restart the retried job speaks the script", async () => {
  // every speech call of the first process hangs; the restarted one finds the queue empty
  const llm = await startFakeOpenAI({
    apiKey: "k",
    tokens: 30,
    speechFaults: [{ mode: "hang", times: 1000 }],
  });
  const env = {
    OPENAI_API_KEY: "k",
    OPENAI_BASE_URL: llm.baseUrl,
    LLM_MODEL: "fake-model",
    TTS_MODEL: "fake-tts",
    JOB_LEASE: "2s",
  };
  const kvDir = await Deno.makeTempDir({ prefix: "repolm-" });
  let app = await startAppProcess(env, { kvPath: `${kvDir}/repolm.kv` });
  try {
    const id = await askFor(app, "podcast");
    await waitFor(() => llm.calls.speech > 0, 20_000, "the first speech call");
    await app.kill();
    llm.setSpeechFaults([]);

    app = await startAppProcess(env, { kvPath: app.kvPath });
    const final = await settled(app, id, "the podcast's audio after the restart");
    assert.equal(final.status, "done");
    assert.equal(final.audio, "ready");
    assert.equal(llm.calls.chat, 1, "the script was done before the kill: no new model call");
    const audio = await fetch(`${app.url}/api/artifacts/${id}/audio`);
    assert.equal(audio.status, 200);
    assert.ok((await audio.arrayBuffer()).byteLength > 100);
  } finally {
    await app.kill();
    await llm.close();
    await Deno.remove(kvDir, { recursive: true });
  }
});
