/** The ingest job: download a commit's archive from GitHub and run the ingest pipeline over it. */
import type { Clock } from "../lib/clock.ts";
import { AppError, PermanentJobError } from "../lib/errors.ts";
import { type GitHubConfig, openArchive } from "../lib/github.ts";
import { INGEST_COMMITS_IN_FLIGHT, ingestArchive, type IngestLimits } from "../lib/ingest.ts";
import type { JobRecord } from "../lib/jobs.ts";
import { keys } from "../lib/keys.ts";
import { KvBatch } from "../lib/kv_util.ts";
import { deleteRepoData, type RepoRecord, saveRepo } from "../lib/repos.ts";
import type { JobContext, JobHandler } from "./worker.ts";

export interface IngestDeps {
  kv: Deno.Kv;
  clock: Clock;
  github: GitHubConfig;
  limits: IngestLimits;
  repoTtlMs: number;
  failedRepoTtlMs: number;
}

/**
 * The download body, counting bytes for progress. A connection that breaks mid-body is GitHub's
 * (or the network's) failure, not a bad archive: it becomes a retryable github_unavailable.
 */
function downloadStream(
  body: ReadableStream<Uint8Array>,
  onBytes: (total: number) => void,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let total = 0;
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      let next;
      try {
        next = await reader.read();
      } catch {
        c.error(
          new AppError(
            502,
            "github_unavailable",
            "The download from GitHub was cut off.",
          ),
        );
        return;
      }
      if (next.done) return c.close();
      total += next.value.byteLength;
      onBytes(total);
      c.enqueue(next.value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}

/** The writes that make a repo visible as ready, for the job's success commit. */
export function markReady(
  repo: RepoRecord,
  result: Pick<RepoRecord, "stats" | "indexShards">,
  now: number,
  ttlMs: number,
): (atomic: Deno.AtomicOperation) => void {
  const ready: RepoRecord = { ...repo, ...result, status: "ready", error: undefined, expiresAt: now + ttlMs };
  return (atomic) => saveRepo(atomic, ready, repo);
}

/** Handles `ingest` jobs. Idempotent: each attempt clears its generation's partial data first. */
export function ingestHandler(deps: IngestDeps): JobHandler {
  const repoOf = async (job: JobRecord) => await deps.kv.get<RepoRecord>(keys.repo(job.subject.repoId!));
  return {
    async run(job: JobRecord, ctx: JobContext) {
      const entry = await repoOf(job);
      const repo = entry.value;
      if (!repo || repo.gen !== job.id) {
        throw new PermanentJobError("repo_not_found", "The repository record is gone.", 404);
      }
      if (repo.status === "ready") return;
      if (repo.source.type === "upload") {
        throw new PermanentJobError(
          "upload_interrupted",
          "The upload was interrupted; upload the archive again.",
          409,
        );
      }
      await deleteRepoData(deps.kv, repo.id, job.id);
      await ctx.progress("downloading", 0, 0);
      const source = repo.source as Required<Pick<RepoRecord["source"], "owner" | "name" | "sha">>;
      const { body, size } = await openArchive(deps.github, source, ctx.signal);
      let progress = Promise.resolve();
      const counted = downloadStream(body, (n) => {
        progress = progress.then(() => ctx.progress("downloading", n, size ?? 0)).catch(() => {});
      });
      const result = await ingestArchive({
        kv: deps.kv,
        repoId: repo.id,
        gen: job.id,
        archive: counted,
        stripSegments: 1,
        filters: { ...repo.filters, subpath: repo.source.subpath },
        limits: deps.limits,
        batch: new KvBatch(deps.kv, {
          checks: () => [ctx.leaseCheck()],
          onCheckFailed: ctx.leaseLost,
          inFlight: INGEST_COMMITS_IN_FLIGHT,
        }),
        signal: ctx.signal,
        onPhase: (phase, done, total) => ctx.progress(phase, done, total),
      });
      await progress;
      return markReady(repo, result, deps.clock.now(), deps.repoTtlMs);
    },
    async onFailed(job, error) {
      const entry = await repoOf(job);
      const repo = entry.value;
      if (!repo || repo.gen !== job.id || repo.status !== "ingesting") return;
      const failed: RepoRecord = {
        ...repo,
        status: "failed",
        error,
        expiresAt: deps.clock.now() + deps.failedRepoTtlMs,
      };
      return (atomic) => saveRepo(atomic.check(entry), failed, repo);
    },
    async afterFailed(job) {
      await deleteRepoData(deps.kv, job.subject.repoId!, job.id);
    },
  };
}
