/**
 * Artifacts, generated once and shared by everyone. Identity = repo + kind + options + model +
 * prompt version; whoever asks for the same one gets the same id, record and text. The record,
 * its generation job and the job's dispatch are created in one commit. Text lives in batches
 * `artifact_text/ID/GEN/SEQ`; the record's `textSeq` says how many are committed.
 */
import type { Clock } from "./clock.ts";
import { LimitError, NotFoundError } from "./errors.ts";
import { stableId } from "./ids.ts";
import type { JobRecord, JobStore } from "./jobs.ts";
import { keys } from "./keys.ts";
import { PROMPT_VERSION } from "./llm/prompts.ts";
import type { ArtifactKind, Expertise, Usage } from "./llm/types.ts";

export type ArtifactStatus = "queued" | "generating" | "done" | "failed";

export interface ArtifactOptions {
  expertise: Expertise;
  concept?: string;
}

export interface ArtifactRecord {
  id: string;
  repoId: string;
  kind: ArtifactKind;
  options: ArtifactOptions;
  status: ArtifactStatus;
  model: string;
  offline: boolean;
  usage: Usage;
  createdAt: number;
  updatedAt: number;
  /** Records, text and audio expire together (KV `expireIn`, and checked on read). */
  expiresAt: number;
  error?: { code: string; message: string };
  jobId: string;
  /** Generation number: bumped when a failed artifact is asked for again. */
  gen: number;
  /** Number of text batches committed for `gen`. */
  textSeq: number;
  audio?: { status: "generating" | "ready" | "failed"; bytes?: number; error?: string };
}

/** The artifact as API.md shows it (content added by the caller when wanted). */
export function publicArtifact(a: ArtifactRecord, content?: string) {
  return {
    id: a.id,
    repoId: a.repoId,
    kind: a.kind,
    options: a.options,
    status: a.status,
    ...(content !== undefined ? { content } : {}),
    model: a.model,
    offline: a.offline,
    usage: a.usage,
    createdAt: new Date(a.createdAt).toISOString(),
    ...(a.error ? { error: a.error } : {}),
    ...(a.kind === "podcast" ? { audio: a.audio?.status ?? "none" } : {}),
  };
}

/** The id of an artifact: the same request for the same repo, model and prompts gives the same id. */
export function artifactId(
  repoId: string,
  kind: ArtifactKind,
  options: ArtifactOptions,
  model: string,
): Promise<string> {
  return stableId(
    "artifact",
    repoId,
    kind,
    options.expertise,
    options.concept?.trim().toLowerCase() ?? "",
    model,
    PROMPT_VERSION,
  );
}

export interface ArtifactRequest {
  repoId: string;
  kind: ArtifactKind;
  options: ArtifactOptions;
  model: string;
  offline: boolean;
  /** Extra job payload (e.g. whose quota the generation uses). */
  payload?: Record<string, unknown>;
  /** How long the artifact is kept (the repo's TTL). */
  ttlMs: number;
}

/** Milliseconds left before `a` expires (at least 1, for `expireIn`). */
export function timeLeft(a: ArtifactRecord, now: number): number {
  return Math.max(1, a.expiresAt - now);
}

/**
 * Single flight: returns the done artifact, joins the generation in progress, or starts one
 * (record + job + dispatch in one commit). A failed artifact is started again under a new gen.
 */
export async function requestArtifact(
  kv: Deno.Kv,
  clock: Clock,
  jobs: JobStore,
  req: ArtifactRequest,
): Promise<{ artifact: ArtifactRecord; job?: JobRecord; created: boolean }> {
  const id = await artifactId(req.repoId, req.kind, req.options, req.model);
  for (let attempt = 0; attempt < 10; attempt++) {
    const entry = await kv.get<ArtifactRecord>(keys.artifact(id));
    const current = entry.value && entry.value.expiresAt > clock.now() ? entry.value : null;
    if (current?.status === "done") return { artifact: current, created: false };
    if (current && current.status !== "failed") {
      const job = await jobs.get(current.jobId);
      if (job && (job.status === "queued" || job.status === "running")) {
        return { artifact: current, job, created: false };
      }
    }
    const now = clock.now();
    let record: ArtifactRecord | undefined;
    const answer = await jobs.create(
      {
        type: "generate",
        subject: { repoId: req.repoId, artifactId: id },
        payload: req.payload ?? {},
        dedupeKey: `artifact:${id}`,
      },
      (atomic, job) => {
        record = {
          id,
          repoId: req.repoId,
          kind: req.kind,
          options: req.options,
          status: "queued",
          model: req.model,
          offline: req.offline,
          usage: { inputTokens: 0, outputTokens: 0 },
          createdAt: current?.createdAt ?? now,
          updatedAt: now,
          expiresAt: now + req.ttlMs,
          jobId: job.id,
          gen: (entry.value?.gen ?? 0) + 1,
          textSeq: 0,
        };
        atomic.check(entry).set(keys.artifact(id), record, { expireIn: req.ttlMs });
      },
    );
    if (!answer) continue;
    if (answer.created) return { artifact: record!, job: answer.job, created: true };
    const now2 = (await kv.get<ArtifactRecord>(keys.artifact(id))).value;
    if (now2) return { artifact: now2, job: answer.job, created: false };
  }
  throw new LimitError(503, "overloaded", "Too many simultaneous requests for this artifact; try again.", 1);
}

/** The artifact record, or a 404 (also once it expired). */
export async function requireArtifact(kv: Deno.Kv, clock: Clock, id: string): Promise<ArtifactRecord> {
  return unexpired((await kv.get<ArtifactRecord>(keys.artifact(id))).value, clock);
}

/** The record when it exists and has not expired; 404 not_found otherwise. */
export function unexpired(a: ArtifactRecord | null, clock: Clock): ArtifactRecord {
  if (!a || a.expiresAt <= clock.now()) {
    throw new NotFoundError("No artifact with that id (it may have expired).");
  }
  return a;
}

/** Batches `from`..`to` (inclusive) of a generation, in order. */
export async function readBatches(
  kv: Deno.Kv,
  id: string,
  gen: number,
  from = 1,
  to = Infinity,
): Promise<string[]> {
  const out: string[] = [];
  const selector = {
    start: keys.artifactText(id, gen, from),
    end: keys.artifactText(id, gen, to === Infinity ? Number.MAX_SAFE_INTEGER : to + 1),
  };
  for await (const e of kv.list<string>(selector)) out.push(e.value);
  return out;
}

/** The whole text committed so far for the artifact's current generation. */
export async function readText(kv: Deno.Kv, a: ArtifactRecord): Promise<string> {
  return (await readBatches(kv, a.id, a.gen, 1, a.textSeq)).join("");
}
