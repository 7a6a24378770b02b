/**
 * Graceful shutdown of the real app (main.ts as a subprocess): at SIGTERM new requests get 503,
 * open event streams end at once (their clients resume elsewhere), an upload still arriving is
 * finished and answered, and the process exits.
 */
import assert from "node:assert/strict";
import { startAppProcess } from "../bench/app_process.ts";
import { concatBytes } from "../lib/bytes.ts";
import { keys } from "../lib/keys.ts";
import { buildTarGz } from "./fakes/archives.ts";
import { startFakeOpenAI } from "./fakes/openai.ts";
import { parseSse, waitFor } from "./helpers.ts";
import { SAMPLE_REPO } from "./model_fixtures.ts";

/** `promise`, or a failure naming `what` after `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => timer = setTimeout(() => reject(new Error(what)), ms));
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("SIGTERM: new requests get 503, streams end, an upload in flight finishes, the process exits", async () => {
  const llm = await startFakeOpenAI({ apiKey: "k", tokens: 2000, delayMs: 20 });
  const app = await startAppProcess({
    OPENAI_API_KEY: "k",
    OPENAI_BASE_URL: llm.baseUrl,
    LLM_MODEL: "fake-model",
  });
  try {
    const archive = await buildTarGz(SAMPLE_REPO);
    const form = new FormData();
    form.append("file", new Blob([archive]), "repo.tar.gz");
    const repo =
      (await (await fetch(`${app.url}/api/repos/upload`, { method: "POST", body: form })).json()).repo;
    const asked = await (await fetch(`${app.url}/api/repos/${repo.id}/artifacts`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ kind: "overview" }),
    })).json();
    const stream = await fetch(`${app.url}/api/artifacts/${asked.artifact.id}/stream`);
    const reader = stream.body!.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "";
    while (!parseSse(seen).some((e) => e.event === "delta")) seen += (await reader.read()).value ?? "";

    // an upload whose second half is held back until the shutdown has begun
    const boundary = "----repolm-shutdown";
    const encoder = new TextEncoder();
    const head =
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="late.tar.gz"\r\n\r\n`;
    const half = archive.length >> 1;
    let release!: () => void;
    const released = new Promise<void>((r) => release = r);
    const chunks = [
      () => concatBytes([encoder.encode(head), archive.subarray(0, half)]),
      async () => {
        await released;
        return concatBytes([archive.subarray(half), encoder.encode(`\r\n--${boundary}--\r\n`)]);
      },
    ];
    const body = new ReadableStream<Uint8Array>({
      async pull(c) {
        const next = chunks.shift();
        if (next) c.enqueue(await next());
        else c.close();
      },
    });
    const uploading = fetch(`${app.url}/api/repos/upload`, {
      method: "POST",
      headers: { "content-type": `multipart/form-data; boundary=${boundary}` },
      body,
    });
    // the upload's ingest has begun once its marker is in KV (lib/upload.ts)
    const kv = await Deno.openKv(app.kvPath);
    try {
      await waitFor(async () =>
        (await kv.list({ prefix: keys.uploadPendingPrefix() }).next()).done === false
      );
    } finally {
      kv.close();
    }

    Deno.kill(app.pid, "SIGTERM");
    const refused = await waitFor(
      async () => {
        const res = await fetch(`${app.url}/api/usage`);
        const json = await res.json();
        return res.status === 503 ? { res, json } : null;
      },
      10_000,
      "new requests to be refused",
    );
    assert.equal(refused.json.error.code, "overloaded");
    assert.ok(refused.res.headers.get("retry-after"));
    const health = await fetch(`${app.url}/health`);
    assert.equal(health.status, 503);
    assert.equal((await health.json()).draining, true);

    // the open stream ends (not in an error: the client resumes elsewhere with Last-Event-ID)
    await within(
      (async () => {
        while (!(await reader.read()).done);
      })(),
      5000,
      "the event stream to end",
    );

    release();
    const uploaded = await within(uploading, 10_000, "the upload to be answered");
    assert.equal(uploaded.status, 200);
    assert.equal((await uploaded.json()).repo.status, "ready");
    await within(app.stop(), 15_000, "the process to exit");
  } finally {
    await app.kill();
    await llm.close();
  }
});
