/**
 * What `POST /api/repos` does: resolve the source, then join an existing repo or ingest, or start
 * one ingest job, the repo record and the caller's ingest slot taken in the same commit.
 */
import type { IngestCap } from "./caps.ts";
import type { Clock } from "./clock.ts";
import { LimitError } from "./errors.ts";
import { type GitHubConfig, resolveRepo } from "./github.ts";
import { parseGitHubUrl, withExplicitRef } from "./github_url.ts";
import { stableId } from "./ids.ts";
import type { JobRecord, JobStore } from "./jobs.ts";
import {
  deleteRepoData,
  EMPTY_STATS,
  getRepoEntry,
  type RepoEntry,
  type RepoFilters,
  type RepoRecord,
  type RepoSource,
  saveRepo,
} from "./repos.ts";

export interface RepoRequestDeps {
  kv: Deno.Kv;
  clock: Clock;
  jobs: JobStore;
  github: GitHubConfig & { webHosts: string[] };
  repoTtlMs: number;
  /** The caller's cap on running ingests: only starting a job takes a slot, never joining one. */
  ingestCap: Pick<IngestCap, "forNewJob">;
}

export interface GitHubIngestRequest {
  url: string;
  ref?: string;
  include?: string[];
  exclude?: string[];
}

export type IngestAnswer = { repo: RepoRecord; job?: JobRecord };

function normalizedFilters(req: { include?: string[]; exclude?: string[] }): RepoFilters {
  const sorted = (list?: string[]) => list?.length ? [...new Set(list)].sort() : undefined;
  return { include: sorted(req.include), exclude: sorted(req.exclude) };
}

/**
 * Resolves a GitHub URL to a commit and returns the ready repo (no job), the running ingest it
 * joins, or a new ingest. Twenty simultaneous callers get one job and one download, and only the
 * one that starts it takes an ingest slot (429 too_many_ingests when the caller has none left).
 */
export async function requestGitHubIngest(
  deps: RepoRequestDeps,
  req: GitHubIngestRequest,
): Promise<IngestAnswer> {
  const target = withExplicitRef(parseGitHubUrl(req.url, deps.github.webHosts), req.ref);
  const resolved = await resolveRepo(deps.kv, deps.github, target);
  const filters = normalizedFilters(req);
  const source: RepoSource = {
    type: "github",
    owner: resolved.owner,
    name: resolved.name,
    ref: resolved.ref,
    sha: resolved.sha,
    ...(target.subpath ? { subpath: target.subpath } : {}),
  };
  const id = await stableId(
    "github",
    source.owner!.toLowerCase(),
    source.name!.toLowerCase(),
    source.sha,
    source.subpath ?? "",
    filters,
  );
  for (let attempt = 0; attempt < 10; attempt++) {
    const entry = await getRepoEntry(deps.kv, deps.clock, id);
    const existing = entry.value;
    if (existing?.status === "ready") return { repo: existing };
    if (existing?.status === "ingesting") {
      const job = await deps.jobs.get(existing.gen);
      if (job && (job.status === "queued" || job.status === "running")) return { repo: existing, job };
    }
    const created = await startIngest(deps, id, source, filters, entry);
    if (created) return created;
  }
  throw new LimitError(
    503,
    "overloaded",
    "Too many simultaneous requests for this repository; try again.",
    1,
  );
}

/**
 * Creates the repo record and its ingest job, taking the caller's ingest slot, in one commit; null
 * when another request won the race (or the caller's slots changed meanwhile).
 */
async function startIngest(
  deps: RepoRequestDeps,
  id: string,
  source: RepoSource,
  filters: RepoFilters,
  entry: RepoEntry,
): Promise<IngestAnswer | null> {
  const now = deps.clock.now();
  const takeSlot = await deps.ingestCap.forNewJob();
  let repo: RepoRecord | undefined;
  const answer = await deps.jobs.create(
    { type: "ingest", subject: { repoId: id }, payload: {}, dedupeKey: `ingest:${id}` },
    (atomic, job) => {
      // create calls this only when no ingest of this repo is running (it answers with that job
      // first), so a request that joins one is never refused, nor takes a slot
      takeSlot(atomic, job.id);
      repo = {
        id,
        status: "ingesting",
        source,
        filters,
        stats: EMPTY_STATS,
        indexShards: 0,
        gen: job.id,
        createdAt: now,
        expiresAt: now + deps.repoTtlMs,
      };
      atomic.check(entry);
      saveRepo(atomic, repo, entry.stored);
    },
  );
  if (!answer) return null;
  if (answer.created) {
    // An expired repo not yet swept is replaced here; its data generation would be orphaned (the
    // sweeper follows the record, which now names the new generation), so remove it now.
    if (entry.stored && entry.stored.gen !== repo!.gen) await deleteRepoData(deps.kv, id, entry.stored.gen);
    return { repo: repo!, job: answer.job };
  }
  const current = (await getRepoEntry(deps.kv, deps.clock, id)).value;
  return current ? { repo: current, job: answer.job } : null;
}
