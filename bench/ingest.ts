/**
 * `deno task bench ingest [--only NAMES] [--package typescript@5] [--files 20000] [--bytes-per-file 5000] [--sorted]
 *   [--archive PATH] [--crafted NAMES|all] [--upload] [--max-file-bytes N] [--v8-flags FLAGS] [--runs 3]
 *   [--dir DIR] [--probe-health]`
 *
 * Ingest throughput and memory. The fake GitHub serves (a) the npm tarball of `typescript@5` (a
 * large real archive, fetched with `npm pack`; TypeScript 7's package is a small launcher) and (b)
 * a synthetic repository of 20,000 files × 5,000 bytes (100 MB), its paths in random order (in
 * path order, as GitHub lists them, with `--sorted`), both from files on disk; with
 * `--archive`, (c) any .tar.gz with one top folder, as GitHub's have; with `--crafted`, (d) archives
 * crafted against the memory bound (bench/crafted_archives.ts: long-words, letter-runs,
 * distinct-words, long-paths). `--only` keeps the named ones of typescript, synthetic, archive and
 * crafted (a comma-separated list). `--upload` sends each archive to `POST /api/repos/upload`
 * instead (so `--archive` may be a .zip; an upload is ingested within its request).
 * `--max-file-bytes` sets the app's MAX_FILE_BYTES (default 1 MB: larger files are skipped);
 * `--v8-flags` starts the app with DENO_V8_FLAGS (e.g. `--max-old-space-size=256`); `--dir` is
 * where the archives, the app's KV file and tar's output go (e.g. /dev/shm, to keep a busy disk
 * out of both measurements). For each, a fresh app process on a fresh KV file
 * ingests it through `POST /api/repos` and the job's SSE stream; the bench prints MB/s, files/s,
 * the app's peak RSS (VmHWM) and CPU, and the time `tar -xzf` (`unzip` for a zip) takes for the same archive. Then it
 * asks the new repository one chat question twice (no model: the offline answer is the retrieval
 * index's best passages) and prints how long each took, and the app's RSS after them.
 * `--probe-health` also asks the app for `/health` every 20 ms while it ingests and prints how long
 * the answers took: what other requests wait while an ingest runs (the probes are work for the app
 * too, so leave it off for the throughput figures).
 * Targets (issue 2): peak RSS < 200 MB at any size; throughput ≥ 1/4 of `tar -xzf`.
 */
import { parseArgs } from "node:util";
import { readArchive } from "../lib/archive.ts";
import { syntheticRepoStream } from "../tests/fakes/archives.ts";
import { startFakeGitHub } from "../tests/fakes/github.ts";
import { type AppProcess, startAppProcess } from "./app_process.ts";
import { CRAFTED, isCrafted, writeCrafted } from "./crafted_archives.ts";
import { type Distribution, distribution } from "./loadtest_stats.ts";

interface Archive {
  name: string;
  path: string;
  compressedBytes: number;
  files: number;
  bytes: number;
}

interface Result {
  seconds: number;
  peakMb: number;
  idleMb: number;
  cpuSeconds: number;
  stored: number;
  skipped: number;
  /** A chat question answered from the new repository's index (offline: retrieval is the work), twice. */
  chatSeconds: [number, number];
  /** The app's RSS after those questions. */
  chatRssMb: number;
  /** How long `/health` took to answer while the ingest ran (with --probe-health). */
  health: Distribution | null;
}

/** A question for the offline chat, whose answer is the index's best passages: times it, start to end of stream. */
async function timeChat(app: AppProcess, repoId: string): Promise<number> {
  const t0 = performance.now();
  const res = await fetch(`${app.url}/api/repos/${repoId}/chat`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ messages: [{ role: "user", content: "How is the config parsed and cached?" }] }),
  });
  const body = await res.text();
  if (!res.ok || !body.includes("event: sources") || !body.includes("event: done")) {
    throw new Error(`chat answered ${res.status}: ${body.slice(0, 300)}`);
  }
  return (performance.now() - t0) / 1000;
}

const MB = 1024 * 1024;

/** Asks `/health` every 20 ms until `stop` is aborted; resolves to how long each answer took (ms). */
async function probeHealth(app: AppProcess, stop: AbortSignal): Promise<number[]> {
  const took: number[] = [];
  while (!stop.aborted) {
    const t0 = performance.now();
    await (await fetch(`${app.url}/health`)).body?.cancel();
    took.push(performance.now() - t0);
    await new Promise((r) => setTimeout(r, 20));
  }
  return took;
}

const basename = (path: string) => path.slice(path.lastIndexOf("/") + 1);

/** `npm pack <spec>` into `dir`; returns the tarball's path. */
async function npmPack(spec: string, dir: string): Promise<string> {
  const out = await new Deno.Command("npm", {
    args: ["pack", spec, "--silent"],
    cwd: dir,
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`npm pack ${spec} failed`);
  const name = new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!;
  return `${dir}/${name}`;
}

export async function writeSynthetic(
  dir: string,
  files: number,
  bytesPerFile: number,
  sorted = false,
): Promise<string> {
  const path = `${dir}/synthetic.tar.gz`;
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  await syntheticRepoStream({ files, bytesPerFile, sorted, prefix: "bench-synthetic-0000000" })
    .pipeTo(file.writable);
  return path;
}

/** Counts the regular files and their bytes in an archive (.tar.gz or, to upload, .zip), streamed. */
async function describe(name: string, path: string): Promise<Archive> {
  const compressedBytes = (await Deno.stat(path)).size;
  let files = 0;
  let bytes = 0;
  const limits = { maxEntryBytes: 0, maxDecompressedBytes: Number.MAX_SAFE_INTEGER };
  for await (const entry of readArchive((await Deno.open(path)).readable, limits)) {
    if (entry.kind !== "file") continue;
    files++;
    bytes += entry.size;
  }
  return { name, path, compressedBytes, files, bytes };
}

/** The command that unpacks the archive, to compare with: `tar -xzf`, or `unzip` for a zip. */
export const unpacker = (path: string) => (path.endsWith(".zip") ? "unzip" : "tar -xzf");

/** Wall and CPU seconds `unpacker(path)` takes to unpack the archive into a fresh directory. */
export async function timeTar(path: string, dir: string): Promise<{ seconds: number; cpuSeconds: number }> {
  const target = await Deno.makeTempDir({ dir, prefix: "tar-" });
  const t0 = performance.now();
  // `time` from bash reports the child's user + sys CPU; TIMEFORMAT keeps it to one number.
  const unpack = unpacker(path) === "unzip" ? 'unzip -q "$0" -d "$1"' : 'tar -xzf "$0" -C "$1"';
  const out = await new Deno.Command("bash", {
    args: ["-c", `TIMEFORMAT="%U %S"; time ${unpack}`, path, target],
    stderr: "piped",
  }).output();
  const seconds = (performance.now() - t0) / 1000;
  await Deno.remove(target, { recursive: true });
  if (!out.success) {
    throw new Error(`${unpacker(path)} ${path} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  const [user, sys] = new TextDecoder().decode(out.stderr).trim().split(/\s+/).slice(-2).map(Number);
  return { seconds, cpuSeconds: user + sys };
}

/** Reads a job's SSE stream until it ends; returns the last event's name and data. */
async function waitForJob(app: AppProcess, jobId: string): Promise<{ event: string; data: unknown }> {
  const res = await fetch(`${app.url}/api/jobs/${jobId}/events`);
  const decoder = new TextDecoder();
  let text = "";
  for await (const chunk of res.body!) {
    text += decoder.decode(chunk, { stream: true });
    const blocks = text.split("\n\n");
    text = blocks.pop()!;
    for (const block of blocks) {
      const event = /^event: (.+)$/m.exec(block)?.[1];
      const data = /^data: (.+)$/m.exec(block)?.[1];
      if (event === "done" || event === "error") {
        await res.body!.cancel().catch(() => {});
        return { event, data: data ? JSON.parse(data) : null };
      }
    }
  }
  throw new Error("the job's event stream ended without done or error");
}

/** Ingests the archive through `POST /api/repos` from the fake GitHub and the job's events; returns the repo's id. */
async function ingestFromGitHub(app: AppProcess, archive: Archive): Promise<string> {
  const res = await fetch(`${app.url}/api/repos`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ url: `bench/${archive.name}` }),
  });
  const started = await res.json();
  if (res.status !== 202) {
    throw new Error(`POST /api/repos answered ${res.status}: ${JSON.stringify(started)}`);
  }
  const end = await waitForJob(app, started.job.id);
  if (end.event !== "done") throw new Error(`the ingest failed: ${JSON.stringify(end.data)}`);
  return started.repo.id;
}

/** Ingests the archive through `POST /api/repos/upload` (answered when it is ingested); returns the repo's id. */
async function uploadArchive(app: AppProcess, archive: Archive): Promise<string> {
  const form = new FormData();
  form.append("file", new File([await Deno.readFile(archive.path)], basename(archive.path)));
  const res = await fetch(`${app.url}/api/repos/upload`, { method: "POST", body: form });
  const body = await res.json();
  if (res.status !== 200) throw new Error(`the upload answered ${res.status}: ${JSON.stringify(body)}`);
  return body.repo.id;
}

async function ingestOnce(
  archive: Archive,
  env: Record<string, string>,
  dir: string,
  probe: boolean,
  upload: boolean,
): Promise<Result> {
  const kvDir = await Deno.makeTempDir({ dir, prefix: "kv-" });
  const app = await startAppProcess(env, { kvPath: `${kvDir}/repolm.kv` });
  const probing = new AbortController();
  let health: Promise<number[]> = Promise.resolve([]);
  try {
    const idleMb = (await app.memory()).rssMb;
    const cpu0 = await app.cpuSeconds();
    const t0 = performance.now();
    if (probe) health = probeHealth(app, probing.signal);
    const repoId = await (upload ? uploadArchive(app, archive) : ingestFromGitHub(app, archive))
      .finally(() => probing.abort());
    const seconds = (performance.now() - t0) / 1000;
    const cpuSeconds = (await app.cpuSeconds()) - cpu0;
    const { peakMb } = await app.memory();
    const repo = await (await fetch(`${app.url}/api/repos/${repoId}`)).json();
    const chatSeconds: [number, number] = [await timeChat(app, repo.id), await timeChat(app, repo.id)];
    return {
      chatSeconds,
      chatRssMb: (await app.memory()).rssMb,
      seconds,
      peakMb,
      idleMb,
      cpuSeconds,
      stored: repo.stats.files,
      skipped: repo.stats.skipped,
      health: distribution(await health),
    };
  } finally {
    await health.catch(() => {}); // a probe fails only when the app did: the ingest's error says why
    await app.stop();
    await Deno.remove(kvDir, { recursive: true }).catch(() => {});
  }
}

function runLine(archive: Archive, r: Result, tar: { seconds: number; cpuSeconds: number }): string {
  return `  run: ingest ${r.seconds.toFixed(2)} s (${(archive.bytes / MB / r.seconds).toFixed(1)} MB/s, ` +
    `${(archive.files / r.seconds).toFixed(0)} files/s), app CPU ${r.cpuSeconds.toFixed(1)} s, ` +
    `peak RSS ${r.peakMb.toFixed(0)} MB (idle ${r.idleMb.toFixed(0)}); ` +
    `${unpacker(archive.path)} ${tar.seconds.toFixed(2)} s (CPU ${
      tar.cpuSeconds.toFixed(2)
    } s); ${r.stored} stored, ${r.skipped} skipped; a chat question ${r.chatSeconds[0].toFixed(2)} s, ` +
    `again ${r.chatSeconds[1].toFixed(2)} s (RSS then ${r.chatRssMb.toFixed(0)} MB)` +
    (r.health
      ? `; /health meanwhile p50 ${r.health.p50} ms, p99 ${r.health.p99} ms, max ${r.health.max} ms ` +
        `(${r.health.count} probes)`
      : "");
}

/** The summary over runs: best wall times of each (the machine may be shared), worst peak RSS. */
function summary(
  archive: Archive,
  results: Result[],
  tars: { seconds: number; cpuSeconds: number }[],
): string {
  const best = Math.min(...results.map((r) => r.seconds));
  const bestTar = Math.min(...tars.map((t) => t.seconds));
  const cpu = Math.min(...results.map((r) => r.cpuSeconds));
  const tarCpu = Math.min(...tars.map((t) => t.cpuSeconds));
  const peak = Math.max(...results.map((r) => r.peakMb));
  const ratio = bestTar / best;
  return [
    `  best of ${results.length}: ingest ${best.toFixed(2)} s = ${
      (archive.bytes / MB / best).toFixed(1)
    } MB/s, ` +
    `${(archive.files / best).toFixed(0)} files/s; ${unpacker(archive.path)} ${bestTar.toFixed(2)} s`,
    `  throughput vs ${unpacker(archive.path)}: ${ratio.toFixed(2)} by wall time, ${
      (tarCpu / cpu).toFixed(2)
    } by CPU time ` +
    `(target ≥ 0.25: ${ratio >= 0.25 ? "met" : "MISSED"})`,
    `  peak RSS ${peak.toFixed(0)} MB (target < 200 MB: ${peak < 200 ? "met" : "MISSED"})`,
  ].join("\n");
}

export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      only: { type: "string" },
      package: { type: "string", default: "typescript@5" },
      "max-file-bytes": { type: "string" },
      "v8-flags": { type: "string" },
      files: { type: "string", default: "20000" },
      "bytes-per-file": { type: "string", default: "5000" },
      sorted: { type: "boolean", default: false },
      archive: { type: "string" },
      crafted: { type: "string" },
      runs: { type: "string", default: "3" },
      dir: { type: "string" },
      "probe-health": { type: "boolean", default: false },
      upload: { type: "boolean", default: false },
    },
  });
  const runs = Math.max(1, Number(values.runs));
  const dir = await Deno.makeTempDir({ prefix: "repolm-bench-ingest-", dir: values.dir });
  const github = await startFakeGitHub();
  try {
    const wanted = (name: string) => !values.only || values.only.split(",").includes(name);
    const crafted = values.crafted === "all" ? Object.keys(CRAFTED) : values.crafted?.split(",") ?? [];
    const unknown = crafted.filter((name) => !isCrafted(name));
    if (unknown.length) {
      throw new Error(`--crafted: no archive ${unknown.join(", ")}; there are ${Object.keys(CRAFTED)}`);
    }
    const archives: Archive[] = [];
    if (wanted("typescript")) archives.push(await describe("typescript", await npmPack(values.package, dir)));
    if (wanted("synthetic")) {
      const path = await writeSynthetic(
        dir,
        Number(values.files),
        Number(values["bytes-per-file"]),
        values.sorted,
      );
      archives.push(await describe("synthetic", path));
    }
    if (values.archive && wanted("archive")) archives.push(await describe("archive", values.archive));
    for (const name of wanted("crafted") ? crafted.filter(isCrafted) : []) {
      archives.push(await describe(name, await writeCrafted(name, dir)));
    }
    for (const a of archives) {
      github.addRepo({ owner: "bench", name: a.name, archive: () => Deno.openSync(a.path).readable });
    }
    const env = {
      GITHUB_API_URL: github.apiUrl,
      GITHUB_CODELOAD_URL: github.codeloadUrl,
      RATE_LIMITS: "read=100000/1m,ingest=1000/1m,generate=1000/1m,chat=1000/1m",
      LOG_LEVEL: "warn",
      ...(values["max-file-bytes"] ? { MAX_FILE_BYTES: values["max-file-bytes"] } : {}),
      ...(values["v8-flags"] ? { DENO_V8_FLAGS: values["v8-flags"] } : {}),
    };
    console.log(`ingest benchmark (${navigator.hardwareConcurrency} CPUs, Deno ${Deno.version.deno})`);
    for (const archive of archives) {
      const label = ["typescript", "archive"].includes(archive.name)
        ? `${archive.name} (${basename(archive.path)})`
        : archive.name;
      console.log(
        `${label}: ${archive.files} files, ${(archive.bytes / MB).toFixed(1)} MB uncompressed, ` +
          `${(archive.compressedBytes / MB).toFixed(1)} MB compressed`,
      );
      const results: Result[] = [];
      const tars: { seconds: number; cpuSeconds: number }[] = [];
      for (let run = 0; run < runs; run++) {
        results.push(await ingestOnce(archive, env, dir, values["probe-health"], values.upload));
        tars.push(await timeTar(archive.path, dir));
        console.log(runLine(archive, results.at(-1)!, tars.at(-1)!));
      }
      console.log(summary(archive, results, tars));
    }
  } finally {
    await github.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) await main(Deno.args);
