/**
 * `deno task bench ingest_stages [--archive PATH] [--files 20000] [--bytes-per-file 5000]
 *   [--rounds 3] [--dir DIR]`
 *
 * Where an ingest's time goes: each stage of the pipeline (lib/ingest.ts) timed on its own, in
 * this process, over one archive — by default the synthetic 100 MB / 20,000-file repository of
 * `deno task bench ingest`; `--archive` takes any .tar.gz. Every stage runs once per round and the
 * best round counts (the token counter's cache of pieces is warm after the first, so its best is
 * a little under what an ingest pays). Each stage prints its wall time and the process's CPU time
 * (every thread: V8's garbage-collection helpers, KV's SQLite writer), then the whole in-process
 * ingest, and `tar -xzf` of the same archive with a quarter of its speed as a time budget: the
 * throughput target of issue 2 (`deno task bench ingest` measures it end to end, through HTTP).
 * Run it with the app's V8 flags to match the app:
 * `DENO_V8_FLAGS=--max-semi-space-size=8,--heap-growing-percent=20 deno task bench ingest_stages`.
 */
import { parseArgs } from "node:util";
import { readArchive } from "../lib/archive.ts";
import { writeBlob } from "../lib/blobs.ts";
import { detectLanguage, filePriority } from "../lib/file_info.ts";
import { contentFilter, pathFilter } from "../lib/filters.ts";
import { ingestArchive } from "../lib/ingest.ts";
import { keys } from "../lib/keys.ts";
import { KvBatch } from "../lib/kv_util.ts";
import { IndexBuilder } from "../lib/retrieval.ts";
import { countTokens } from "../lib/tokens.ts";
import { cpuSecondsOf } from "./app_process.ts";
import { timeTar, unpacker, writeSynthetic } from "./ingest.ts";

const LIMITS = {
  fileBytes: 1 << 20,
  files: 100_000,
  totalBytes: 2 ** 31,
  decompressedBytes: 2 ** 31,
  treeBytes: 2 ** 31,
};

interface File {
  path: string;
  bytes: Uint8Array;
  text: string;
}

/** A fresh KV file in `dir`, removed with its folder by the returned function. */
async function freshKv(dir: string): Promise<{ kv: Deno.Kv; remove: () => Promise<void> }> {
  const folder = await Deno.makeTempDir({ dir, prefix: "kv-" });
  const kv = await Deno.openKv(`${folder}/stages.kv`);
  return {
    kv,
    remove: async () => {
      kv.close();
      await Deno.remove(folder, { recursive: true });
    },
  };
}

/** The archive's regular files with their bytes, as the ingest reads them. */
async function unpack(path: string): Promise<{ path: string; bytes: Uint8Array }[]> {
  const files = [];
  using file = await Deno.open(path);
  const entries = readArchive(file.readable, {
    maxEntryBytes: LIMITS.fileBytes,
    maxDecompressedBytes: LIMITS.decompressedBytes,
  });
  for await (const entry of entries) {
    if (entry.kind === "file" && entry.content) files.push({ path: entry.path, bytes: entry.content });
  }
  return files;
}

/** Each stage: its work over the archive, given what the stages before it made. */
function stages(archivePath: string, dir: string) {
  let raw: { path: string; bytes: Uint8Array }[] = [];
  let files: File[] = [];
  let shards: { key: Deno.KvKey; value: unknown }[] = [];
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  return {
    "unpack (gunzip, untar)": async () => {
      raw = await unpack(archivePath);
    },
    "UTF-8 decoding": () => {
      files = [];
      for (const { path, bytes } of raw) {
        try {
          files.push({ path, bytes, text: utf8.decode(bytes) });
        } catch {
          // binary: skipped by the ingest too
        }
      }
    },
    "filters, language, priority": () => {
      const byPath = pathFilter({});
      for (const f of files) {
        if (!byPath(f.path)) contentFilter(f.bytes, f.text);
        detectLanguage(f.path);
        filePriority(f.path);
      }
    },
    "token counts": () => {
      for (const f of files) countTokens(f.text);
    },
    "retrieval index (no KV)": async () => {
      shards = [];
      const collect = {
        set: (key: Deno.KvKey, value: unknown) => Promise.resolve(void shards.push({ key, value })),
      };
      const index = new IndexBuilder("bench", "g", collect);
      for (const f of files) await index.add(f.path, f.text);
      await index.finish();
    },
    "KV writes (files, index shards)": async () => {
      const { kv, remove } = await freshKv(dir);
      try {
        const batch = new KvBatch(kv);
        for (const [i, f] of files.entries()) {
          await writeBlob(batch, keys.repoFileByNumber("bench", "g", i), f.bytes);
        }
        for (const { key, value } of shards) await batch.set(key, value);
        await batch.flush();
      } finally {
        await remove();
      }
    },
    "whole ingest, in process": async () => {
      const { kv, remove } = await freshKv(dir);
      try {
        using archive = await Deno.open(archivePath);
        await ingestArchive({
          kv,
          repoId: "bench",
          gen: "g",
          archive: archive.readable,
          stripSegments: 1,
          filters: {},
          limits: LIMITS,
          batch: new KvBatch(kv),
          signal: new AbortController().signal,
        });
      } finally {
        await remove();
      }
    },
  };
}

interface Timing {
  seconds: number;
  cpuSeconds: number;
}

const best = (runs: Timing[]): Timing => runs.reduce((a, b) => (b.seconds < a.seconds ? b : a));

export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      archive: { type: "string" },
      files: { type: "string", default: "20000" },
      "bytes-per-file": { type: "string", default: "5000" },
      rounds: { type: "string", default: "3" },
      dir: { type: "string" },
    },
  });
  const rounds = Math.max(1, Number(values.rounds));
  const dir = await Deno.makeTempDir({ prefix: "repolm-bench-stages-", dir: values.dir });
  try {
    const archivePath = values.archive ??
      await writeSynthetic(dir, Number(values.files), Number(values["bytes-per-file"]));
    const work = Object.entries(stages(archivePath, dir));
    const timings = new Map<string, Timing[]>(work.map(([name]) => [name, []]));
    const tars: Timing[] = [];
    for (let round = 0; round < rounds; round++) {
      for (const [name, run] of work) {
        const cpu0 = cpuSecondsOf("self");
        const t0 = performance.now();
        await run();
        timings.get(name)!.push({
          seconds: (performance.now() - t0) / 1000,
          cpuSeconds: cpuSecondsOf("self") - cpu0,
        });
      }
      tars.push(await timeTar(archivePath, dir));
    }
    const tar = best(tars);
    console.log(
      `ingest stages (${navigator.hardwareConcurrency} CPUs, Deno ${Deno.version.deno}, ` +
        `V8 flags: ${Deno.env.get("DENO_V8_FLAGS") || "none"}), best of ${rounds}: ${archivePath}`,
    );
    let sum = 0;
    for (const [name, runs] of timings) {
      const { seconds, cpuSeconds } = best(runs);
      const whole = name.startsWith("whole");
      if (!whole) sum += seconds;
      if (whole) console.log(`  ${"stages one after another".padEnd(34)} ${sum.toFixed(2).padStart(6)} s`);
      console.log(
        `  ${name.padEnd(34)} ${seconds.toFixed(2).padStart(6)} s   CPU ${cpuSeconds.toFixed(2)} s`,
      );
    }
    console.log(
      `  ${unpacker(archivePath).padEnd(34)} ${tar.seconds.toFixed(2).padStart(6)} s   CPU ${
        tar.cpuSeconds.toFixed(2)
      } s`,
    );
    console.log(`  a quarter of tar's speed: the whole ingest in ${(tar.seconds * 4).toFixed(2)} s`);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) await main(Deno.args);
