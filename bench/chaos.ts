/**
 * `deno task chaos [--seed N] [--kills 10] [--min-up-ms 1500] [--max-up-ms 5000] [--clients 24]
 *  [--faults-seconds 20] [--skip-kills] [--skip-faults]`
 *
 * Chaos against the real app, reproducible from a seed (printed first; CHAOS_SEED=N or --seed N
 * replays the same choices — the timing of a machine is never exactly the same).
 *
 * 1. Kills: main.ts runs as a subprocess on a KV file under a mixed load (uploads, GitHub ingests
 *    from the fake GitHub, artifacts from the fake model, viewers that resume with Last-Event-ID,
 *    chats, job polls). It gets `kill -9` at random moments and is started again on the same file
 *    and port each time. Then: every accepted job ended (succeeded, or failed with a code and a
 *    message), every accepted repo is whole, every finished artifact's text is exactly one model
 *    reply (nothing duplicated or missing) and so is what every viewer saw, and after the sweeps
 *    (clock moved past the upload staleness limit) no KV data is orphaned.
 * 2. Model faults: an app wired to the fake OpenAI server gets 429 storms, hangs and dropped
 *    streams while clients ask for artifacts, watch them and chat. Every stream must end with
 *    `done` or `error` (a code and a message) before its deadline, every refusal must be a 429/503
 *    with Retry-After, the circuit must open during the storm, and everything must work again
 *    once the faults stop.
 *
 * The CI test (tests/chaos_test.ts) runs both in a short form.
 */
// Harness code reading arbitrary JSON answers of the API under test.
// deno-lint-ignore-file no-explicit-any
import { parseArgs } from "node:util";
import { type AppProcess, freePort, startAppProcess } from "./app_process.ts";
import { Rng, seedFrom } from "./loadtest_rng.ts";
import { buildTarGz, type FixtureEntry } from "../tests/fakes/archives.ts";
import { type FakeGitHub, startFakeGitHub } from "../tests/fakes/github.ts";
import { type FakeOpenAI, fakeReplyText, startFakeOpenAI } from "../tests/fakes/openai.ts";
import { parseSse, startTestApp, type TestApp } from "../tests/helpers.ts";
import { SAMPLE_REPO, uploadRepo } from "../tests/model_fixtures.ts";
import { keys } from "../lib/keys.ts";
import type { RepoRecord } from "../lib/repos.ts";
import type { ArtifactRecord } from "../lib/artifacts.ts";
import type { JobRecord } from "../lib/jobs.ts";
import { sweepExpiredRepos } from "../lib/repos.ts";
import { sweepAbandonedUploads, UPLOAD_STALE_MS } from "../lib/upload.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));
const ENDED = new Set(["succeeded", "failed", "canceled"]);

export interface KillChaosOptions {
  seed: number;
  kills: number;
  /** The app runs between `minUpMs` and `maxUpMs` before each kill. */
  minUpMs: number;
  maxUpMs: number;
  /** Concurrent load clients. */
  clients: number;
  /** How long accepted jobs get to end after the last restart. */
  settleMs: number;
  /** Model tokens per reply and ms per token of the fake OpenAI server. */
  llmTokens: number;
  llmDelayMs: number;
  /** Extra environment for the app. */
  env?: Record<string, string>;
  log?: (line: string) => void;
}

export interface ChaosReport {
  seed: number;
  counts: Record<string, number>;
  /** Everything that broke a promise; empty when the run passed. */
  problems: string[];
  /** Things worth knowing that are not failures of this run. */
  notes: string[];
}

/** Pseudo-random source files (gzip keeps them about as large, so downloads take a while). */
function noiseFiles(rng: Rng, prefix: string, files: number, bytes: number): FixtureEntry[] {
  const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ";
  return Array.from({ length: files }, (_, i) => {
    let body = `// ${prefix} module ${i}\nexport const id${i} = ${i};\n`;
    while (body.length < bytes) {
      body += rng.chance(1 / 50) ? "\n// " : letters[rng.int(0, letters.length - 1)];
    }
    return { path: `src/${prefix}_${String(i).padStart(2, "0")}.ts`, content: `${body}\n` };
  });
}

interface Ledger {
  jobs: Map<string, string>;
  uploads: Map<string, FixtureEntry[]>;
  github: Map<string, FixtureEntry[]>;
  readyRepos: string[];
  artifacts: Set<string>;
  /** Per artifact, the generation jobs asked for it: more than one when it was asked again after failing. */
  generations: Map<string, Set<string>>;
  transcripts: { artifactId: string; text: string; end: "done" | "error" | "open" }[];
  chats: Record<string, number>;
  refusals: Record<string, number>;
}

/** fetch with a deadline that never throws: null on a network error or timeout. */
async function tryFetch(url: string, init: RequestInit = {}, timeoutMs = 10_000) {
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    let body: any = null;
    try {
      body = JSON.parse(text);
    } catch { /* SSE or text */ }
    return { status: res.status, body, text, headers: res.headers };
  } catch {
    return null;
  }
}

const jsonPost = (body: unknown): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify(body),
});

/** Reads one SSE connection; `onEvent` sees every event; resolves when it ends or breaks. */
async function readStream(
  url: string,
  init: RequestInit,
  onEvent: (e: { id?: string; event: string; data: any }) => void,
  deadlineMs: number,
): Promise<{ status: number; retryAfter: string | null; broke: boolean; body?: string }> {
  let res: Response;
  try {
    res = await fetch(url, { ...init, signal: AbortSignal.timeout(deadlineMs) });
  } catch {
    return { status: 0, retryAfter: null, broke: true };
  }
  if (res.status !== 200 || !res.body) {
    return {
      status: res.status,
      retryAfter: res.headers.get("retry-after"),
      broke: false,
      body: await res.text(),
    };
  }
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let pending = "";
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      pending += value;
      const cut = pending.lastIndexOf("\n\n");
      if (cut === -1) continue;
      for (const e of parseSse(pending.slice(0, cut + 2))) onEvent(e as never);
      pending = pending.slice(cut + 2);
    }
    return { status: 200, retryAfter: null, broke: false };
  } catch {
    return { status: 200, retryAfter: null, broke: true };
  } finally {
    reader.cancel().catch(() => {});
  }
}

/** The kill -9 chaos run; see the module doc. */
export async function runKillChaos(opts: KillChaosOptions): Promise<ChaosReport> {
  const log = opts.log ?? console.log;
  const rng = new Rng(opts.seed);
  const problems: string[] = [];
  const notes: string[] = [];
  const ledger: Ledger = {
    jobs: new Map(),
    uploads: new Map(),
    github: new Map(),
    readyRepos: [],
    artifacts: new Set(),
    generations: new Map(),
    transcripts: [],
    chats: {},
    refusals: {},
  };
  const llm = await startFakeOpenAI({ apiKey: "chaos", tokens: opts.llmTokens, delayMs: opts.llmDelayMs });
  const github: FakeGitHub = await startFakeGitHub();
  const ghFixtures: FixtureEntry[][] = [];
  for (let i = 0; i < 6; i++) {
    const files = noiseFiles(rng, `gh${i}`, 12, 3000);
    ghFixtures.push(files);
    github.addRepo({ owner: "acme", name: `chaos${i}`, archive: files, chunkBytes: 2048, delayMs: 25 });
  }
  const dir = await Deno.makeTempDir({ prefix: "repolm-chaos-" });
  const kvPath = `${dir}/repolm.kv`;
  const port = freePort();
  const base = `http://127.0.0.1:${port}`;
  const env = {
    OPENAI_API_KEY: "chaos",
    OPENAI_BASE_URL: llm.baseUrl,
    LLM_MODEL: "fake-model",
    LLM_TIMEOUT: "5s",
    // a killed process keeps its model slots for LLM_TIMEOUT + 30 s; enough slots that ten kills
    // do not starve the budget (bench/chaos.ts --env LLM_MAX_INFLIGHT=16 shows the default)
    LLM_MAX_INFLIGHT: "64",
    // every chaos client is 127.0.0.1: one client's daily token quota would end the run early
    QUOTA_DAILY_TOKENS: "0",
    QUOTA_GLOBAL_DAILY_TOKENS: "0",
    GITHUB_API_URL: github.apiUrl,
    GITHUB_CODELOAD_URL: github.codeloadUrl,
    JOB_LEASE: "2s",
    LOG_LEVEL: "error",
    ...opts.env,
  };
  let app: AppProcess = await startAppProcess(env, { kvPath, port });
  let stopping = false;
  const count = (bag: Record<string, number>, key: string) => bag[key] = (bag[key] ?? 0) + 1;

  async function client(i: number) {
    const r = new Rng(opts.seed * 31 + i + 1);
    let n = 0;
    while (!stopping) {
      n++;
      const action = r.next();
      if (action < 0.14) {
        const entries: FixtureEntry[] = [
          { path: "README.md", content: `# upload ${i}-${n}\n\nSeed ${opts.seed}.\n` },
          ...noiseFiles(r, `u${i}_${n}`, r.int(2, 5), r.int(200, 3000)),
        ];
        const form = new FormData();
        form.append("file", new Blob([await buildTarGz(entries)]), `u${i}-${n}.tar.gz`);
        const res = await tryFetch(`${base}/api/repos/upload`, { method: "POST", body: form });
        if (res?.status === 200) {
          ledger.uploads.set(res.body.repo.id, entries);
          ledger.readyRepos.push(res.body.repo.id);
        } else if (res && res.status >= 500) count(ledger.refusals, `upload ${res.status}`);
      } else if (action < 0.22) {
        const k = r.int(0, ghFixtures.length - 1);
        const res = await tryFetch(`${base}/api/repos`, jsonPost({ url: `acme/chaos${k}` }));
        if (res?.status === 202 || res?.status === 200) {
          ledger.github.set(res.body.repo.id, ghFixtures[k]);
          if (res.body.job) ledger.jobs.set(res.body.job.id, "ingest");
          if (res.status === 200) ledger.readyRepos.push(res.body.repo.id);
        }
      } else if (action < 0.5 && ledger.readyRepos.length) {
        const repoId = r.pick(ledger.readyRepos);
        const kind = r.pick(["overview", "slides", "podcast", "concepts"] as const);
        const body = {
          kind,
          expertise: r.pick(["beginner", "intermediate", "expert"]),
          ...(kind === "concepts" ? { concept: r.pick(["parsing", "modules", "exports"]) } : {}),
        };
        const res = await tryFetch(`${base}/api/repos/${repoId}/artifacts`, jsonPost(body));
        if (res?.status === 200 || res?.status === 202) {
          const id = res.body.artifact.id;
          ledger.artifacts.add(id);
          if (res.body.job) {
            ledger.jobs.set(res.body.job.id, "generate");
            ledger.generations.set(id, (ledger.generations.get(id) ?? new Set()).add(res.body.job.id));
          }
        } else if (res) count(ledger.refusals, `artifact ${res.status} ${res.body?.error?.code}`);
      } else if (action < 0.7 && ledger.artifacts.size) {
        await view(r.pick([...ledger.artifacts]));
      } else if (action < 0.8 && ledger.readyRepos.length) {
        const repoId = r.pick(ledger.readyRepos);
        let end = "broke";
        const out = await readStream(
          `${base}/api/repos/${repoId}/chat`,
          jsonPost({ messages: [{ role: "user", content: r.pick(["What is this?", "Where is id3?"]) }] }),
          (e) => {
            if (e.event === "done") end = "done";
            if (e.event === "error") end = `error ${e.data?.code}`;
          },
          20_000,
        );
        count(ledger.chats, out.status === 200 ? end : `status ${out.status}`);
      } else if (ledger.jobs.size) {
        await tryFetch(`${base}/api/jobs/${r.pick([...ledger.jobs.keys()])}`);
      }
      await sleep(r.int(20, 200));
    }
  }

  /** Watches an artifact to the end, resuming after a broken connection with Last-Event-ID. */
  async function view(artifactId: string) {
    const t: Ledger["transcripts"][number] = { artifactId, text: "", end: "open" };
    ledger.transcripts.push(t);
    let lastSeq = 0;
    const deadline = Date.now() + 60_000;
    while (t.end === "open" && Date.now() < deadline) {
      const out = await readStream(
        `${base}/api/artifacts/${artifactId}/stream`,
        { headers: lastSeq ? { "Last-Event-ID": String(lastSeq) } : {} },
        (e) => {
          if (e.event === "delta") {
            const seq = Number(e.id);
            if (seq !== lastSeq + 1) problems.push(`viewer of ${artifactId}: seq ${seq} after ${lastSeq}`);
            lastSeq = seq;
            t.text += e.data.text;
          } else if (e.event === "done") t.end = "done";
          else if (e.event === "error") t.end = "error";
        },
        deadline - Date.now(),
      );
      if (t.end !== "open") return;
      if (out.status !== 200 && out.status !== 0) {
        problems.push(`viewer of ${artifactId}: ${out.status} ${out.body?.slice(0, 200)}`);
        return;
      }
      if (stopping) return;
      await sleep(200); // the app is down or restarting: come back and resume
    }
    if (t.end === "open" && !stopping) {
      problems.push(`a viewer of ${artifactId} saw no done/error within 60 s`);
    }
  }

  const loops = Array.from({ length: opts.clients }, (_, i) => client(i));
  const killTimes: number[] = [];
  try {
    for (let k = 0; k < opts.kills; k++) {
      await sleep(rng.int(opts.minUpMs, opts.maxUpMs));
      await app.kill();
      killTimes.push(Date.now());
      log(`kill -9 #${k + 1} (pid ${app.pid})`);
      app = await startAppProcess(env, { kvPath, port });
    }
    await sleep(rng.int(opts.minUpMs, opts.maxUpMs));
    stopping = true;
    await Promise.race([Promise.all(loops), sleep(70_000)]);

    // every accepted job ends
    const settleDeadline = Date.now() + opts.settleMs;
    const jobs = new Map<string, any>();
    for (const id of ledger.jobs.keys()) {
      while (true) {
        const res = await tryFetch(`${base}/api/jobs/${id}`);
        if (res?.status === 200 && ENDED.has(res.body.status)) {
          jobs.set(id, res.body);
          break;
        }
        if (Date.now() > settleDeadline) {
          problems.push(
            `job ${id} (${ledger.jobs.get(id)}) did not end: ${res?.status} ${JSON.stringify(res?.body)}`,
          );
          break;
        }
        await sleep(250);
      }
    }
    const outcomes: Record<string, number> = {};
    for (const job of jobs.values()) {
      count(outcomes, `${job.type} ${job.status}${job.error ? ` ${job.error.code}` : ""}`);
      if (job.status === "failed" && !(job.error?.code && job.error?.message)) {
        problems.push(`job ${job.id} failed without a reason: ${JSON.stringify(job)}`);
      }
      if (job.status === "canceled") problems.push(`job ${job.id} was canceled`);
    }

    // every accepted repo is whole
    const checkRepo = async (repoId: string, entries: FixtureEntry[], mayFail: boolean) => {
      const repo = await tryFetch(`${base}/api/repos/${repoId}`);
      if (repo?.status !== 200) return problems.push(`repo ${repoId}: ${repo?.status}`);
      if (repo.body.status !== "ready") {
        if (!mayFail || repo.body.status !== "failed" || !repo.body.error?.code) {
          problems.push(`repo ${repoId} is ${repo.body.status}: ${JSON.stringify(repo.body.error)}`);
        }
        return;
      }
      const tree = await tryFetch(`${base}/api/repos/${repoId}/tree`);
      const paths = (tree?.body?.files ?? []).map((f: { path: string }) => f.path).sort();
      const expected = entries.map((e) => e.path).sort();
      if (JSON.stringify(paths) !== JSON.stringify(expected)) {
        problems.push(`repo ${repoId}: tree ${JSON.stringify(paths)} is not ${JSON.stringify(expected)}`);
      }
      for (const e of entries) {
        const file = await tryFetch(`${base}/api/repos/${repoId}/files/${e.path}`);
        if (file?.text !== e.content) problems.push(`repo ${repoId}: ${e.path} differs (${file?.status})`);
      }
    };
    for (const [id, entries] of ledger.uploads) await checkRepo(id, entries, false);
    for (const [id, entries] of ledger.github) await checkRepo(id, entries, true);

    // every finished artifact is exactly one model reply, and so is what viewers saw
    const replies = new Set(
      llm.calls.log.filter((c) => c.messages).map((c) => fakeReplyText(c.messages!, opts.llmTokens)),
    );
    const finals = new Map<string, any>();
    const artifactOutcomes: Record<string, number> = {};
    for (const id of ledger.artifacts) {
      const a = await tryFetch(`${base}/api/artifacts/${id}`);
      if (a?.status !== 200) {
        problems.push(`artifact ${id}: ${a?.status}`);
        continue;
      }
      finals.set(id, a.body);
      count(artifactOutcomes, `${a.body.status}${a.body.error ? ` ${a.body.error.code}` : ""}`);
      if (a.body.status === "failed") {
        if (!a.body.error?.code) problems.push(`artifact ${id} failed without a reason`);
        continue;
      }
      if (a.body.status !== "done") {
        problems.push(`artifact ${id} is still ${a.body.status}`);
        continue;
      }
      if (!replies.has(a.body.content)) {
        problems.push(`artifact ${id}: its text is not exactly one model reply (duplicated or missing text)`);
      }
      let replay = "";
      let seq = 0;
      await readStream(`${base}/api/artifacts/${id}/stream`, {}, (e) => {
        if (e.event !== "delta") return;
        if (Number(e.id) !== seq + 1) problems.push(`artifact ${id}: replay seq ${e.id} after ${seq}`);
        seq = Number(e.id);
        replay += e.data.text;
      }, 10_000);
      if (replay !== a.body.content) {
        problems.push(`artifact ${id}: the replayed stream differs from its content`);
      }
    }
    const seen: Record<string, number> = {};
    for (const t of ledger.transcripts) {
      const final = finals.get(t.artifactId);
      count(seen, t.end);
      if (t.end === "done" && final?.content !== t.text) {
        problems.push(
          `a viewer of ${t.artifactId} saw ${t.text.length} chars, not the ${final?.content?.length} of the artifact`,
        );
      }
      // an artifact that failed (e.g. worker_lost after many kills) and was asked for again may end done
      const regenerated = (ledger.generations.get(t.artifactId)?.size ?? 0) > 1;
      if (t.end === "error" && final?.status !== "failed" && !regenerated) {
        problems.push(`a viewer of ${t.artifactId} got an error but the artifact is ${final?.status}`);
      }
    }

    // no orphans after the sweeps
    await app.stop();
    const orphans = await orphanCheck(kvPath);
    problems.push(...orphans.problems);
    notes.push(...orphans.notes);
    const counts = {
      kills: killTimes.length,
      jobs: ledger.jobs.size,
      uploads: ledger.uploads.size,
      githubRepos: ledger.github.size,
      artifacts: ledger.artifacts.size,
      viewers: ledger.transcripts.length,
      modelCalls: llm.calls.chat,
      ...Object.fromEntries(Object.entries(outcomes).map(([k, v]) => [`job ${k}`, v])),
      ...Object.fromEntries(Object.entries(artifactOutcomes).map(([k, v]) => [`artifact ${k}`, v])),
      ...Object.fromEntries(Object.entries(seen).map(([k, v]) => [`viewer ${k}`, v])),
      ...Object.fromEntries(Object.entries(ledger.chats).map(([k, v]) => [`chat ${k}`, v])),
      ...Object.fromEntries(Object.entries(ledger.refusals).map(([k, v]) => [`refused ${k}`, v])),
      ...orphans.counts,
    };
    return { seed: opts.seed, counts, problems, notes };
  } finally {
    stopping = true;
    await app.kill().catch(() => {});
    await llm.close();
    await github.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/**
 * Runs the sweeps on the KV file as if UPLOAD_STALE_MS had passed, then looks for data nothing
 * points to: repo data generations without their repo, pending uploads, job indexes of ended or
 * missing jobs, artifact text without its artifact.
 */
export async function orphanCheck(kvPath: string) {
  const problems: string[] = [];
  const notes: string[] = [];
  const kv = await Deno.openKv(kvPath);
  try {
    const later = { now: () => Date.now() + UPLOAD_STALE_MS + 60_000 };
    const sweptUploads = await sweepAbandonedUploads(kv, later);
    const sweptRepos = await sweepExpiredRepos(kv, { now: () => Date.now() });
    const gens = new Map<string, Set<string>>();
    for await (const e of kv.list({ prefix: ["repo_data"] })) {
      const [, id, gen] = e.key as [string, string, string];
      if (!gens.has(id)) gens.set(id, new Set());
      gens.get(id)!.add(gen);
    }
    let orphanGens = 0;
    for (const [id, set] of gens) {
      const repo = (await kv.get<RepoRecord>(keys.repo(id))).value;
      for (const gen of set) {
        if (!repo || repo.gen !== gen || repo.status === "failed") {
          orphanGens++;
          problems.push(
            `orphaned repo data: repo_data/${id}/${gen} (repo ${
              repo ? `${repo.status} gen ${repo.gen}` : "missing"
            })`,
          );
        }
      }
    }
    let pending = 0;
    for await (const _ of kv.list({ prefix: keys.uploadPendingPrefix() })) pending++;
    if (pending) problems.push(`${pending} upload_pending markers left after the sweep`);
    const jobIndex = async (prefix: string, idAt: number, byValue = false) => {
      let stale = 0;
      for await (const e of kv.list({ prefix: [prefix] })) {
        const id = byValue ? String(e.value) : String(e.key[idAt]);
        const job = (await kv.get<JobRecord>(keys.job(id))).value;
        if (!job || ENDED.has(job.status)) {
          stale++;
          problems.push(`stale ${prefix} entry for job ${id} (${job?.status ?? "missing"})`);
        }
      }
      return stale;
    };
    const staleJobIndexes = await jobIndex("job_running", 1) + await jobIndex("job_lease", 1) +
      await jobIndex("job_ready", 2) + await jobIndex("job_active", 0, true);
    let orphanText = 0;
    let oldGenText = 0;
    const records = new Map<string, ArtifactRecord | null>();
    for await (const e of kv.list({ prefix: ["artifact_text"] })) {
      const [, id, gen] = e.key as [string, string, number];
      if (!records.has(id)) records.set(id, (await kv.get<ArtifactRecord>(keys.artifact(id))).value);
      const rec = records.get(id);
      if (!rec) {
        orphanText++;
        problems.push(`artifact text without its artifact: ${id}`);
      } else if (gen !== rec.gen) oldGenText++;
    }
    if (oldGenText) {
      notes.push(
        `${oldGenText} text batches of replaced artifact generations remain (a failed artifact asked again ` +
          `starts a new gen; nothing deletes the old gen's text — see docs/SCALING.md)`,
      );
    }
    let slots = 0;
    for await (const _ of kv.list({ prefix: ["llm_slot"] })) slots++;
    if (slots) notes.push(`${slots} model budget slots still leased (they lapse after LLM_TIMEOUT + 30 s)`);
    return {
      problems,
      notes,
      counts: {
        sweptUploads,
        sweptRepos,
        orphanGens,
        staleJobIndexes,
        orphanText,
        oldGenText,
        leasedSlots: slots,
      },
    };
  } finally {
    kv.close();
  }
}

// --- model faults --------------------------------------------------------------------------------

export interface FaultChaosOptions {
  seed: number;
  /** Clients asking, watching and chatting at once. */
  clients: number;
  /** Seconds of each fault phase (429 storm, hangs, drops), then healthy. */
  phaseSeconds: number;
  /** Longest any stream may stay open. */
  streamDeadlineMs: number;
  log?: (line: string) => void;
}

/** The model-fault chaos run (in-process app); see the module doc. */
export async function runFaultChaos(opts: FaultChaosOptions): Promise<ChaosReport> {
  const log = opts.log ?? console.log;
  const problems: string[] = [];
  const notes: string[] = [];
  const counts: Record<string, number> = {};
  const count = (key: string) => counts[key] = (counts[key] ?? 0) + 1;
  const llm: FakeOpenAI = await startFakeOpenAI({
    apiKey: "faults",
    tokens: 40,
    delayMs: 5,
    retryAfterSec: 1,
  });
  const app: TestApp = await startTestApp({
    env: {
      OPENAI_API_KEY: "faults",
      OPENAI_BASE_URL: llm.baseUrl,
      LLM_MODEL: "fake-model",
      LLM_TIMEOUT: "1500ms",
      LLM_MAX_RETRIES: "2",
      CIRCUIT_THRESHOLD: "4",
      CIRCUIT_COOLDOWN: "1s",
      JOB_MAX_ATTEMPTS: "3",
      JOB_TIMEOUT: "20s",
      QUOTA_DAILY_TOKENS: "0",
      QUOTA_GLOBAL_DAILY_TOKENS: "0",
    },
  });
  let stopping = false;
  let circuitSeenOpen = false;
  try {
    const repoId = await uploadRepo(app, SAMPLE_REPO);
    const phases = ["429", "hang", "drop"] as const;
    const clients = Array.from({ length: opts.clients }, async (_, i) => {
      const r = new Rng(opts.seed * 17 + i);
      let n = 0;
      while (!stopping) {
        n++;
        const started = Date.now();
        if (r.chance(0.6)) {
          // a new artifact each time (a new concept), watched to its end
          const asked = await app.json(
            `/api/repos/${repoId}/artifacts`,
            { ...jsonPost({ kind: "concepts", concept: `c${i}-${n}` }) },
          );
          if (asked.status === 503 || asked.status === 429) {
            if (!asked.res.headers.get("retry-after")) {
              problems.push(`artifact ${asked.status} without Retry-After`);
            }
            count(`artifact refused ${asked.status} ${(asked.body as any)?.error?.code}`);
          } else if (asked.status !== 202 && asked.status !== 200) {
            problems.push(`artifact request answered ${asked.status} ${JSON.stringify(asked.body)}`);
          } else {
            const id = (asked.body as any).artifact.id;
            const end = await streamEnd(app, `/api/artifacts/${id}/stream`, null, opts.streamDeadlineMs);
            if (end.kind === "hang") {
              problems.push(`artifact stream ${id} still open after ${opts.streamDeadlineMs} ms`);
            } else if (end.kind === "cut") problems.push(`artifact stream ${id} ended without done/error`);
            else if (end.kind === "error" && !end.code) {
              problems.push(`artifact stream ${id}: error without a code`);
            }
            count(`artifact stream ${end.kind}${end.code ? ` ${end.code}` : ""}`);
          }
        } else {
          const res = await app.fetch(
            `/api/repos/${repoId}/chat`,
            jsonPost({ messages: [{ role: "user", content: `question ${i}-${n}` }] }),
          );
          if (res.status !== 200) {
            const body = await res.json().catch(() => null);
            if ((res.status === 503 || res.status === 429) && res.headers.get("retry-after")) {
              count(`chat refused ${res.status} ${body?.error?.code}`);
            } else problems.push(`chat answered ${res.status} ${JSON.stringify(body)}`);
          } else {
            const end = await streamEnd(app, null, res, opts.streamDeadlineMs);
            if (end.kind === "hang") {
              problems.push(`chat stream still open after ${opts.streamDeadlineMs} ms`);
            } else if (end.kind === "cut") problems.push("chat stream ended without done/error");
            count(`chat ${end.kind}${end.code ? ` ${end.code}` : ""}`);
          }
        }
        await sleep(r.int(50, 250) - (Date.now() - started) / 10);
      }
    });
    const watchCircuit = (async () => {
      while (!stopping) {
        const h = await app.json<{ llm: { circuit: string } }>("/health");
        if (h.body.llm.circuit !== "closed") circuitSeenOpen = true;
        await sleep(100);
      }
    })();
    for (const phase of phases) {
      log(`model faults: ${phase} for ${opts.phaseSeconds} s`);
      llm.setOptions({ fail: phase });
      await sleep(opts.phaseSeconds * 1000);
    }
    llm.setOptions({ fail: undefined });
    log("model faults: none; waiting for recovery");
    await sleep(opts.phaseSeconds * 1000);
    stopping = true;
    await Promise.all([...clients, watchCircuit]);
    if (!circuitSeenOpen) problems.push("the circuit never opened during the 429 storm and hangs");
    // recovery: the circuit closes and a new artifact and a chat go through
    const deadline = Date.now() + 15_000;
    let recovered = false;
    while (Date.now() < deadline && !recovered) {
      const asked = await app.json(
        `/api/repos/${repoId}/artifacts`,
        jsonPost({ kind: "concepts", concept: `after-${Date.now()}` }),
      );
      if (asked.status === 202 || asked.status === 200) {
        const end = await streamEnd(
          app,
          `/api/artifacts/${(asked.body as any).artifact.id}/stream`,
          null,
          opts.streamDeadlineMs,
        );
        recovered = end.kind === "done";
      }
      if (!recovered) await sleep(500);
    }
    if (!recovered) problems.push("no artifact succeeded within 15 s of the faults stopping");
    const chat = await app.fetch(
      `/api/repos/${repoId}/chat`,
      jsonPost({ messages: [{ role: "user", content: "ok?" }] }),
    );
    const chatEnd = chat.status === 200 ? await streamEnd(app, null, chat, opts.streamDeadlineMs) : null;
    if (chatEnd?.kind !== "done") {
      problems.push(`chat after recovery: ${chat.status} ${chatEnd?.kind} ${chatEnd?.code}`);
    }
    const health = await app.json<{ llm: { circuit: string } }>("/health");
    if (health.body.llm.circuit !== "closed") {
      problems.push(`circuit is ${health.body.llm.circuit} after recovery`);
    }
    counts.modelCalls = llm.calls.chat;
    counts.modelCallsAbortedByClient = llm.calls.aborted;
    return { seed: opts.seed, counts, problems, notes };
  } finally {
    stopping = true;
    await app.close();
    await llm.close();
  }
}

/** How a stream ended: done, error (with its code), cut (no final event) or hang (past the deadline). */
async function streamEnd(
  app: TestApp,
  path: string | null,
  given: Response | null,
  deadlineMs: number,
): Promise<{ kind: "done" | "error" | "cut" | "hang"; code?: string }> {
  const res = given ?? await app.fetch(path!);
  if (res.status !== 200 || !res.body) {
    const body = await res.json().catch(() => null);
    return { kind: "error", code: `${res.status} ${body?.error?.code}` };
  }
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hang = new Promise<"hang">((r) => timer = setTimeout(() => r("hang"), deadlineMs));
  try {
    while (true) {
      const next = await Promise.race([reader.read(), hang]);
      if (next === "hang") return { kind: "hang" };
      if (next.done) break;
      text += next.value;
      const events = parseSse(text.slice(0, text.lastIndexOf("\n\n") + 2));
      const last = events.findLast((e) => e.event === "done" || e.event === "error");
      if (last?.event === "done") return { kind: "done" };
      if (last?.event === "error") {
        const data = last.data as { code?: string; message?: string };
        return { kind: "error", code: data?.message ? data.code : undefined };
      }
    }
    return { kind: "cut" };
  } catch {
    return { kind: "cut" };
  } finally {
    clearTimeout(timer);
    reader.cancel().catch(() => {});
  }
}

function printReport(name: string, report: ChaosReport): void {
  console.log(`${name} (seed ${report.seed}):`);
  for (const [k, v] of Object.entries(report.counts)) console.log(`  ${k}: ${v}`);
  for (const n of report.notes) console.log(`  note: ${n}`);
  for (const p of report.problems) console.log(`  PROBLEM: ${p}`);
  console.log(report.problems.length ? `  ${report.problems.length} problems` : "  passed");
}

export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      seed: { type: "string" },
      kills: { type: "string", default: "10" },
      "min-up-ms": { type: "string", default: "1500" },
      "max-up-ms": { type: "string", default: "5000" },
      clients: { type: "string", default: "24" },
      "settle-ms": { type: "string", default: "90000" },
      "faults-seconds": { type: "string", default: "8" },
      "skip-kills": { type: "boolean", default: false },
      "skip-faults": { type: "boolean", default: false },
      env: { type: "string", multiple: true },
    },
  });
  const seed = values.seed ? Number(values.seed) >>> 0 : seedFrom("CHAOS_SEED");
  console.log(`chaos seed ${seed} (replay: deno task chaos --seed ${seed})`);
  const env = Object.fromEntries(
    (values.env ?? []).map((kv) => [kv.split("=")[0], kv.split("=").slice(1).join("=")]),
  );
  let failed = false;
  if (!values["skip-kills"]) {
    const report = await runKillChaos({
      seed,
      kills: Number(values.kills),
      minUpMs: Number(values["min-up-ms"]),
      maxUpMs: Number(values["max-up-ms"]),
      clients: Number(values.clients),
      settleMs: Number(values["settle-ms"]),
      llmTokens: 300,
      llmDelayMs: 10,
      env,
    });
    printReport("kill -9 chaos", report);
    failed ||= report.problems.length > 0;
  }
  if (!values["skip-faults"]) {
    const report = await runFaultChaos({
      seed,
      clients: Number(values.clients),
      phaseSeconds: Number(values["faults-seconds"]),
      streamDeadlineMs: 30_000,
    });
    printReport("model-fault chaos", report);
    failed ||= report.problems.length > 0;
  }
  return failed ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
