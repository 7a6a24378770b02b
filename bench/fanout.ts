/**
 * `deno task bench fanout [--viewers 2000] [--tokens 500] [--delay-ms 20] [--idle 1000] [--idle-seconds 10]`
 *
 * N viewers of one new artifact produced by the fake OpenAI server at ~50 tokens/s: model calls,
 * delivery lag from KV write to client (p50/p99), server RSS and CPU; then the CPU used by idle
 * open streams. The app runs as a subprocess on a KV file; viewers are raw TCP connections so
 * the client side stays cheap. Lag: this process polls the same KV file every 5 ms and notes when
 * each batch became visible; a viewer's lag for a batch is its receive time minus that moment
 * (only for batches written after the viewer connected).
 */
import { parseArgs } from "node:util";
import { buildTarGz } from "../tests/fakes/archives.ts";
import { startFakeOpenAI } from "../tests/fakes/openai.ts";
import { SAMPLE_REPO } from "../tests/model_fixtures.ts";
import { type AppProcess, startAppProcess } from "./app_process.ts";
import { keys } from "../lib/keys.ts";
import type { ArtifactRecord } from "../lib/artifacts.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface Viewer {
  connectedAt: number;
  received: Map<number, number>;
  text: string;
  done: Promise<void>;
  close(): void;
}

/** Opens one SSE stream over raw HTTP/1.1 and records when each delta arrived. */
async function openViewer(port: number, path: string): Promise<Viewer> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(
    encoder.encode(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`),
  );
  const viewer: Viewer = {
    connectedAt: performance.now(),
    received: new Map(),
    text: "",
    done: Promise.resolve(),
    close: () => {},
  };
  let closed = false;
  viewer.close = () => {
    if (!closed) {
      closed = true;
      try {
        conn.close();
      } catch { /* already closed */ }
    }
  };
  viewer.done = (async () => {
    const buf = new Uint8Array(64 * 1024);
    let pending = "";
    const event = /id: (\d+)\nevent: (\w+)\ndata: (.*)\n\n/g;
    while (!closed) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      const now = performance.now();
      pending += decoder.decode(buf.subarray(0, n), { stream: true });
      let m: RegExpExecArray | null;
      let consumed = 0;
      event.lastIndex = 0;
      while ((m = event.exec(pending))) {
        consumed = event.lastIndex;
        if (m[2] === "delta") {
          viewer.received.set(Number(m[1]), now);
          viewer.text += (JSON.parse(m[3]) as { text: string }).text;
        } else {
          viewer.close();
          return;
        }
      }
      pending = pending.slice(consumed);
    }
  })();
  return viewer;
}

function percentile(values: number[], p: number): number {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function postJson(url: string, body: unknown) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

/** Notes when each text batch of an artifact becomes visible in KV. */
function watchBatches(kvPath: string, id: string) {
  const seen = new Map<number, number>();
  let stop = false;
  const done = (async () => {
    const kv = await Deno.openKv(kvPath);
    let last = 0;
    while (!stop) {
      const rec = (await kv.get<ArtifactRecord>(keys.artifact(id))).value;
      const now = performance.now();
      if (rec) {
        for (let s = last + 1; s <= rec.textSeq; s++) seen.set(s, now);
        last = Math.max(last, rec.textSeq);
        if (rec.status === "done" || rec.status === "failed") break;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    kv.close();
  })();
  return { seen, stop: async () => (stop = true, await done) };
}

async function uploadRepo(app: AppProcess): Promise<string> {
  const form = new FormData();
  form.append("file", new Blob([await buildTarGz(SAMPLE_REPO)]), "repo.tar.gz");
  const res = await fetch(`${app.url}/api/repos/upload`, { method: "POST", body: form });
  const body = await res.json();
  if (res.status !== 200) throw new Error(`upload failed: ${JSON.stringify(body)}`);
  return body.repo.id;
}

async function openMany(port: number, path: string, count: number): Promise<Viewer[]> {
  const viewers: Viewer[] = [];
  for (let i = 0; i < count; i += 200) {
    viewers.push(
      ...await Promise.all(Array.from({ length: Math.min(200, count - i) }, () => openViewer(port, path))),
    );
  }
  return viewers;
}

export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      viewers: { type: "string", default: "2000" },
      tokens: { type: "string", default: "500" },
      "delay-ms": { type: "string", default: "20" },
      idle: { type: "string", default: "1000" },
      "idle-seconds": { type: "string", default: "10" },
    },
  });
  const viewersWanted = Number(values.viewers);
  const llm = await startFakeOpenAI({
    apiKey: "bench",
    tokens: Number(values.tokens),
    delayMs: Number(values["delay-ms"]),
  });
  const app = await startAppProcess({
    OPENAI_API_KEY: "bench",
    OPENAI_BASE_URL: llm.baseUrl,
    LLM_MODEL: "fake-model",
    RATE_LIMITS: "read=100000000/1m,generate=100000/1m,ingest=1000/1m,chat=1000/1m",
    MAX_STREAMS_PER_CLIENT: "0",
    MAX_STREAMS_PER_PROCESS: "0",
  });
  const port = Number(new URL(app.url).port);
  try {
    const repoId = await uploadRepo(app);
    const cpu0 = await app.cpuSeconds();
    const t0 = performance.now();
    const asked = await postJson(`${app.url}/api/repos/${repoId}/artifacts`, { kind: "overview" });
    const id = asked.body.artifact.id as string;
    const batches = watchBatches(app.kvPath, id);
    const viewers = await openMany(port, `/api/artifacts/${id}/stream`, viewersWanted);
    const opened = performance.now() - t0;
    await Promise.all(viewers.map((v) => v.done));
    const elapsed = (performance.now() - t0) / 1000;
    await batches.stop();
    const cpu = (await app.cpuSeconds()) - cpu0;
    const mem = await app.memory();
    const content = (await (await fetch(`${app.url}/api/artifacts/${id}`)).json()).content as string;
    const identical = viewers.filter((v) => v.text === content).length;
    const lags: number[] = [];
    for (const v of viewers) {
      for (const [seq, at] of v.received) {
        const written = batches.seen.get(seq);
        if (written !== undefined && written > v.connectedAt) lags.push(at - written);
      }
    }
    console.log(
      `fanout: ${viewersWanted} viewers, ${values.tokens} tokens at ${values["delay-ms"]} ms/token`,
    );
    console.log(`  model calls: ${llm.calls.chat}`);
    console.log(`  viewers with the full, identical text: ${identical}/${viewers.length}`);
    console.log(
      `  all viewers connected after ${(opened / 1000).toFixed(1)} s; all done after ${elapsed.toFixed(1)} s`,
    );
    console.log(
      `  delivery lag KV write → client: p50 ${percentile(lags, 50).toFixed(0)} ms, p99 ${
        percentile(lags, 99).toFixed(0)
      } ms (${lags.length} samples)`,
    );
    console.log(
      `  server: peak RSS ${mem.peakMb.toFixed(0)} MB, CPU ${cpu.toFixed(1)} s over ${
        elapsed.toFixed(1)
      } s (${(100 * cpu / elapsed).toFixed(0)}% of a core)`,
    );

    const idleCount = Number(values.idle);
    const idleSeconds = Number(values["idle-seconds"]);
    llm.setOptions({ delayMs: 600_000 });
    const slow = await postJson(`${app.url}/api/repos/${repoId}/artifacts`, { kind: "slides" });
    const idle = await openMany(port, `/api/artifacts/${slow.body.artifact.id}/stream`, idleCount);
    await new Promise((r) => setTimeout(r, 1000));
    const idleCpu0 = await app.cpuSeconds();
    await new Promise((r) => setTimeout(r, idleSeconds * 1000));
    const idleCpu = (await app.cpuSeconds()) - idleCpu0;
    console.log(
      `  idle: ${idleCount} open streams for ${idleSeconds} s used ${idleCpu.toFixed(2)} CPU s (${
        (100 * idleCpu / idleSeconds).toFixed(2)
      }% of a core)`,
    );
    for (const v of idle) v.close();
    await Promise.all(idle.map((v) => v.done));
  } finally {
    await app.stop();
    await llm.close();
  }
}

if (import.meta.main) await main(Deno.args);
