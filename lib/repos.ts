/** Repository records: created with their ingest job in one commit, made visible only when ready. */
import { type BlobMeta, getBlobMeta } from "./blobs.ts";
import type { Clock } from "./clock.ts";
import { NotFoundError } from "./errors.ts";
import { findFileNumber } from "./file_numbers.ts";
import { keys } from "./keys.ts";
import { deletePrefix } from "./kv_util.ts";

export type RepoStatus = "ingesting" | "ready" | "failed";

export interface RepoSource {
  type: "github" | "upload";
  owner?: string;
  name?: string;
  ref?: string;
  sha?: string;
  subpath?: string;
  filename?: string;
}

export interface RepoStats {
  files: number;
  skipped: number;
  bytes: number;
  tokens: number;
  languages: Record<string, number>;
}

export interface RepoFilters {
  include?: string[];
  exclude?: string[];
}

export interface RepoRecord {
  id: string;
  status: RepoStatus;
  source: RepoSource;
  filters: RepoFilters;
  stats: RepoStats;
  indexShards: number;
  /** The ingest job whose data this record shows (see keys.repoData). */
  gen: string;
  error?: { code: string; message: string };
  createdAt: number;
  expiresAt: number;
}

/** The repo as API.md shows it. */
export function publicRepo(repo: RepoRecord) {
  return {
    id: repo.id,
    status: repo.status,
    source: repo.source,
    stats: repo.stats,
    ...(repo.error ? { error: repo.error } : {}),
    createdAt: new Date(repo.createdAt).toISOString(),
    expiresAt: new Date(repo.expiresAt).toISOString(),
  };
}

export const EMPTY_STATS: RepoStats = { files: 0, skipped: 0, bytes: 0, tokens: 0, languages: {} };

/** A repo record with the versionstamp to check it by; `value` is null when absent or expired. */
export type RepoEntry = Deno.AtomicCheck & { value: RepoRecord | null; stored: RepoRecord | null };

/** The repo entry, treating expired records as absent (the versionstamp still guards overwrites). */
export async function getRepoEntry(kv: Deno.Kv, clock: Clock, id: string): Promise<RepoEntry> {
  const entry = await kv.get<RepoRecord>(keys.repo(id));
  const live = entry.value && entry.value.expiresAt > clock.now() ? entry.value : null;
  return { key: entry.key, versionstamp: entry.versionstamp, value: live, stored: entry.value };
}

/** A repo that exists and is not expired, or a 404. */
export async function requireRepo(kv: Deno.Kv, clock: Clock, id: string): Promise<RepoRecord> {
  const entry = await getRepoEntry(kv, clock, id);
  if (!entry.value) throw new NotFoundError("No repository with that id (it may have expired).");
  return entry.value;
}

/** A repo whose ingest finished, or a 404 / 409 saying why not. */
export async function requireReadyRepo(kv: Deno.Kv, clock: Clock, id: string): Promise<RepoRecord> {
  const repo = await requireRepo(kv, clock, id);
  if (repo.status !== "ready") {
    throw new NotFoundError(
      repo.status === "ingesting"
        ? "The repository is still being ingested."
        : "The repository's ingest failed.",
      repo.status === "ingesting" ? "repo_not_ready" : "repo_failed",
    );
  }
  return repo;
}

/** Adds the writes that store a repo record and its expiry index entry to `atomic`. */
export function saveRepo(atomic: Deno.AtomicOperation, repo: RepoRecord, previous?: RepoRecord | null): void {
  if (previous && previous.expiresAt !== repo.expiresAt) {
    atomic.delete(keys.repoExpiry(previous.expiresAt, previous.id));
  }
  atomic.set(keys.repo(repo.id), repo);
  atomic.set(keys.repoExpiry(repo.expiresAt, repo.id), true);
}

/**
 * The blob that holds the repo's file at `path`, and its metadata; null when the repo stores no
 * file there. A file is under its path unless it came out of key order (`keys.repoFileByPath`), so
 * the path is looked at first: one read for the files of an archive listed in order.
 */
export async function findFileBlob(
  kv: Deno.Kv,
  repo: Pick<RepoRecord, "id" | "gen">,
  path: string,
): Promise<{ key: Deno.KvKey; meta: BlobMeta } | null> {
  const byPath = keys.repoFileByPath(repo.id, repo.gen, path);
  const meta = await getBlobMeta(kv, byPath);
  if (meta) return { key: byPath, meta };
  const n = await findFileNumber(kv, repo.id, repo.gen, path);
  if (n === null) return null;
  const key = keys.repoFileByNumber(repo.id, repo.gen, n);
  const numbered = await getBlobMeta(kv, key);
  return numbered && { key, meta: numbered };
}

/** Deletes one generation of a repo's files, tree and index (not its record). */
export function deleteRepoData(kv: Deno.Kv, id: string, gen: string): Promise<number> {
  return deletePrefix(kv, keys.repoData(id, gen));
}

/**
 * Removes repos whose time is up: their files and indexes first, then the record. Safe to run
 * on every instance at once; returns how many repos were removed.
 */
export async function sweepExpiredRepos(kv: Deno.Kv, clock: Clock, limit = 100): Promise<number> {
  let removed = 0;
  const now = clock.now();
  const iter = kv.list<true>({ prefix: keys.repoExpiryPrefix(), end: keys.repoExpiry(now, "") }, { limit });
  for await (const entry of iter) {
    const [, expiresAt, id] = entry.key as [string, number, string];
    const repo = await kv.get<RepoRecord>(keys.repo(id));
    if (repo.value && repo.value.expiresAt > now) {
      await kv.delete(entry.key);
      continue;
    }
    const gone = await kv.atomic().check(repo).delete(keys.repo(id)).delete(keys.repoExpiry(expiresAt, id))
      .commit();
    if (gone.ok && repo.value) await deleteRepoData(kv, id, repo.value.gen);
    if (gone.ok) removed++;
  }
  return removed;
}
