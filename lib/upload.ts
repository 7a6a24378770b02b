/**
 * Ingests an uploaded archive inside the request that carries it: multipart body → busboy →
 * ingest pipeline → KV, streamed. The repo record is written only when the ingest succeeded; a
 * bad upload leaves nothing behind. A marker lets the sweeper remove data a crash left behind.
 */
// @ts-types="@types/busboy"
import Busboy from "busboy";
import { Readable } from "node:stream";
import type { Clock } from "./clock.ts";
import { formatBytes } from "./archive.ts";
import { restarting } from "./drain.ts";
import { BadRequestError, LimitError } from "./errors.ts";
import { newId } from "./ids.ts";
import { INGEST_COMMITS_IN_FLIGHT, ingestArchive, type IngestLimits } from "./ingest.ts";
import { keys } from "./keys.ts";
import { KvBatch } from "./kv_util.ts";
import { deleteRepoData, type RepoRecord, saveRepo } from "./repos.ts";
import { assertValidGlobs } from "./filters.ts";

export interface UploadDeps {
  kv: Deno.Kv;
  clock: Clock;
  limits: IngestLimits & { uploadBytes: number };
  repoTtlMs: number;
  /** True while the process shuts down (which cuts off request bodies still arriving). */
  draining(): boolean;
}

const ARCHIVE_NAME = /\.(tar\.gz|tgz|tar|zip)$/i;
/** How long an unfinished upload's data may sit before the sweeper treats it as abandoned. */
export const UPLOAD_STALE_MS = 10 * 60_000;

/** The 413 for an upload over `limit` bytes. */
export function uploadTooLarge(limit: number): LimitError {
  return new LimitError(413, "upload_too_large", `Uploads are limited to ${formatBytes(limit)}.`);
}

/** A form field's globs: one per line or comma-separated (a comma inside `{a,b}` is the glob's). */
function splitGlobs(value: string): string[] {
  const list: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i <= value.length; i++) {
    const ch = value[i];
    if (ch === "{") depth++;
    else if (ch === "}") depth = Math.max(0, depth - 1);
    else if (i === value.length || ch === "\n" || (ch === "," && depth === 0)) {
      list.push(value.slice(start, i).trim());
      start = i + 1;
      if (ch === "\n") depth = 0;
    }
  }
  return list.filter(Boolean);
}

function globsFrom(value: string): string[] {
  const list = splitGlobs(value);
  if (list.length > 50 || list.some((g) => g.length > 200)) {
    throw new BadRequestError("invalid_request", "include/exclude must be up to 50 glob patterns.");
  }
  assertValidGlobs(list);
  return list;
}

/** Parses the multipart body and ingests its `file` field; resolves with the ready repo. */
export function ingestUpload(
  deps: UploadDeps,
  body: ReadableStream<Uint8Array>,
  contentType: string,
  signal: AbortSignal,
): Promise<RepoRecord> {
  return new Promise<RepoRecord>((resolve, reject) => {
    let busboy: ReturnType<typeof Busboy>;
    try {
      busboy = Busboy({
        headers: { "content-type": contentType },
        limits: { files: 1, fields: 10, fieldSize: 16 * 1024, fileSize: deps.limits.uploadBytes, parts: 12 },
      });
    } catch {
      return reject(
        new BadRequestError(
          "invalid_request",
          "Send the archive as multipart/form-data in a field named file.",
        ),
      );
    }
    const filters: { include?: string[]; exclude?: string[] } = {};
    let started = false;
    let settled = false;
    const settle = (fn: () => void) => {
      if (!settled) {
        settled = true;
        fn();
      }
    };
    const input = Readable.fromWeb(body as import("node:stream/web").ReadableStream);
    const fail = (e: unknown) => {
      settle(() => reject(e));
      input.unpipe(busboy);
      input.resume();
    };
    busboy.on("field", (name, value) => {
      try {
        if (name === "include" || name === "exclude") filters[name] = globsFrom(value);
      } catch (e) {
        fail(e);
      }
    });
    busboy.on("file", (name, file, info) => {
      // A part is destroyed with busboy's error when the form breaks off ("Unexpected end of
      // form"); a skipped part has no other listener, and an unheard stream error kills the process.
      file.on("error", () => {});
      if (name !== "file" || started) {
        file.resume();
        return;
      }
      started = true;
      if (!ARCHIVE_NAME.test(info.filename ?? "")) {
        file.resume();
        return fail(new BadRequestError("invalid_archive", "Upload a .tar.gz, .tgz, .tar or .zip file."));
      }
      file.on("limit", () => file.destroy(uploadTooLarge(deps.limits.uploadBytes)));
      // Not Readable.toWeb: once the ingest gives up and cancels, its adapter still pushes the
      // part's later chunks into the closed stream, an uncaught TypeError that ends the process.
      // Cancelling this one returns the iterator, which destroys the part.
      const stream = ReadableStream.from<Uint8Array>(file);
      ingestStream(deps, stream, info.filename ?? "upload", filters, signal).then(
        (repo) => settle(() => resolve(repo)),
        (e) => fail(e),
      );
    });
    busboy.on(
      "error",
      () => fail(new BadRequestError("invalid_request", "The multipart body is malformed.")),
    );
    busboy.on("close", () => {
      if (!started) fail(new BadRequestError("invalid_request", "The form has no field named file."));
    });
    input.on("error", (e) => {
      if (signal.aborted) fail(e);
      else if (deps.draining()) fail(restarting());
      else fail(new BadRequestError("invalid_request", "The upload was cut off."));
    });
    input.pipe(busboy);
  });
}

async function ingestStream(
  deps: UploadDeps,
  archive: ReadableStream<Uint8Array>,
  filename: string,
  filters: { include?: string[]; exclude?: string[] },
  signal: AbortSignal,
): Promise<RepoRecord> {
  const now = deps.clock.now();
  const gen = newId(now);
  const id = newId(now);
  const pending = keys.uploadPending(id);
  await deps.kv.set(pending, { gen, startedAt: now }, { expireIn: UPLOAD_STALE_MS * 6 });
  try {
    const result = await ingestArchive({
      kv: deps.kv,
      repoId: id,
      gen,
      archive,
      stripSegments: "top",
      filters,
      limits: deps.limits,
      batch: new KvBatch(deps.kv, { inFlight: INGEST_COMMITS_IN_FLIGHT }),
      signal,
    });
    const repo: RepoRecord = {
      id,
      status: "ready",
      source: { type: "upload", filename: filename.slice(0, 255) },
      filters,
      stats: result.stats,
      indexShards: result.indexShards,
      gen,
      createdAt: now,
      expiresAt: deps.clock.now() + deps.repoTtlMs,
    };
    const atomic = deps.kv.atomic();
    saveRepo(atomic, repo);
    await atomic.delete(pending).commit();
    return repo;
  } catch (e) {
    await deleteRepoData(deps.kv, id, gen);
    await deps.kv.delete(pending);
    throw e;
  }
}

/** Removes the data of uploads whose request died before finishing (a crash mid-upload). */
export async function sweepAbandonedUploads(kv: Deno.Kv, clock: Clock): Promise<number> {
  let removed = 0;
  for await (
    const entry of kv.list<{ gen: string; startedAt: number }>({ prefix: keys.uploadPendingPrefix() })
  ) {
    if (clock.now() - entry.value.startedAt < UPLOAD_STALE_MS) continue;
    await deleteRepoData(kv, entry.key[1] as string, entry.value.gen);
    await kv.delete(entry.key);
    removed++;
  }
  return removed;
}
