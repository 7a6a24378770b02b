/**
 * Every Deno KV key the app uses is built here, so the whole key space can be read in one place.
 * Families and their roles:
 *   repo / repo_expiry / repo_data      repository records, their expiry index, files and indexes
 *   upload_pending                      uploads in progress, so a crash's leftovers are swept
 *   gh_resolve                          short-lived cache of GitHub ref → commit resolution
 *   job / job_active / job_ready / job_running / job_lease / job_stats / job_signal   the job system
 *   artifact / artifact_text / artifact_data                         generated artifacts
 *   rl / quota / quota_settled / apikey / apikey_id / ingest_slots  traffic control
 *   circuit / llm_slot / llm_tpm                                     model providers
 */
type Part = Deno.KvKeyPart;

export const keys = {
  repo: (id: string) => ["repo", id] as const,
  repoExpiry: (expiresAt: number, id: string) => ["repo_expiry", expiresAt, id] as const,
  repoExpiryPrefix: () => ["repo_expiry"] as const,
  /** A repo's data is kept per generation (the ingest job's id), so a re-ingest never mixes with a sweep. */
  repoData: (id: string, gen: string) => ["repo_data", id, gen] as const,
  /**
   * A stored file's blob is under its path while the archive lists paths in key order (GitHub's
   * do), so that KV appends it; a file out of that order is under the next number instead, and its
   * path's number is in a page under repoFileNumbers (lib/file_numbers.ts). Either way SQLite
   * inserts at the end of its B-tree: a file inserted at a random place cost ~2.5× as much
   * (docs/PERFORMANCE.md).
   */
  repoFileByPath: (id: string, gen: string, path: string) => ["repo_data", id, gen, "file", path] as const,
  repoFileByNumber: (id: string, gen: string, n: number) => ["repo_data", id, gen, "files", n] as const,
  repoFileNumbers: (id: string, gen: string, firstPath: string) =>
    ["repo_data", id, gen, "file_numbers", firstPath] as const,
  repoFileNumbersPrefix: (id: string, gen: string) => ["repo_data", id, gen, "file_numbers"] as const,
  /** A path's number as ingests wrote it before the pages (a key per path): read for repos stored then. */
  repoFileNumberOfPath: (id: string, gen: string, path: string) =>
    ["repo_data", id, gen, "file_number", path] as const,
  repoTree: (id: string, gen: string) => ["repo_data", id, gen, "tree"] as const,
  repoIndexShard: (id: string, gen: string, shard: number) => ["repo_data", id, gen, "index", shard] as const,
  uploadPending: (id: string) => ["upload_pending", id] as const,
  uploadPendingPrefix: () => ["upload_pending"] as const,
  githubResolve: (owner: string, name: string, ref: string) => ["gh_resolve", owner, name, ref] as const,

  job: (id: string) => ["job", id] as const,
  jobActive: (dedupeKey: string) => ["job_active", dedupeKey] as const,
  jobReady: (runAt: number, id: string) => ["job_ready", runAt, id] as const,
  jobReadyPrefix: () => ["job_ready"] as const,
  jobRunning: (id: string) => ["job_running", id] as const,
  jobRunningPrefix: () => ["job_running"] as const,
  jobLease: (id: string) => ["job_lease", id] as const,
  jobStats: (type: string) => ["job_stats", type] as const,
  jobSignal: () => ["job_signal"] as const,

  artifact: (id: string) => ["artifact", id] as const,
  artifactText: (id: string, gen: number, seq: number) => ["artifact_text", id, gen, seq] as const,
  artifactData: (id: string, name: string) => ["artifact_data", id, name] as const,

  /** A key never written: /health and /metrics time one read of it. */
  healthProbe: () => ["health"] as const,
  circuit: (provider: string) => ["circuit", provider] as const,
  llmSlot: (slot: number) => ["llm_slot", slot] as const,
  llmSlots: () => ["llm_slot"] as const,
  llmTokensWindow: (minute: number) => ["llm_tpm", minute] as const,

  /** Fixed-window request counter; the window number is in the key, so old windows just expire. */
  rateWindow: (policy: string, clientId: string, window: number) => ["rl", policy, clientId, window] as const,
  /** Model tokens used per client and in all per UTC day (day = days since the epoch). */
  quotaClient: (clientId: string, day: number) => ["quota", "client", clientId, day] as const,
  quotaGlobal: (day: number) => ["quota", "global", day] as const,
  /** Marks a token reservation settled, so a retried job cannot settle it twice. */
  quotaSettled: (reservationId: string) => ["quota_settled", reservationId] as const,
  /** API keys by SHA-256 hash of the secret (the secret itself is never stored), and hash by id. */
  apiKey: (hash: string) => ["apikey", hash] as const,
  apiKeyId: (id: string) => ["apikey_id", id] as const,
  apiKeyIdPrefix: () => ["apikey_id"] as const,
  /** A client's running ingests (job ids and in-request uploads), one record. */
  ingestSlots: (clientId: string) => ["ingest_slots", clientId] as const,
} satisfies Record<string, (...args: never[]) => readonly Part[]>;
