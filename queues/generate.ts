/**
 * The generate job: build the context, call the model once (through the budget, the retries and
 * the shared circuit), append the text in batches, and for podcasts speak the script. Idempotent:
 * a retry after a crash must reproduce the text already shown, or the artifact fails cleanly; a
 * retry of a done podcast whose audio was cut off speaks the script again. Speech calls take a
 * budget slot and go through the retries and the circuit too.
 */
import { ArtifactWriter, interruptedError, type WriterOptions } from "../lib/artifact_writer.ts";
import { type ArtifactRecord, readText, timeLeft } from "../lib/artifacts.ts";
import { putBlob } from "../lib/blobs.ts";
import type { Clock } from "../lib/clock.ts";
import { DeferJobError, PermanentJobError } from "../lib/errors.ts";
import type { JobRecord } from "../lib/jobs.ts";
import { keys } from "../lib/keys.ts";
import { commitWithRetry } from "../lib/kv_util.ts";
import { buildContext } from "../lib/llm/context.ts";
import type { ModelDeps } from "../lib/llm/models.ts";
import type { BudgetGrant } from "../lib/llm/budget.ts";
import { failureCode, LlmFailedError, resilientCall, resilientStream } from "../lib/llm/resilient.ts";
import { recordModelCall } from "../lib/metrics.ts";
import { type GenerationTask, type LlmProvider, PODCAST_HOSTS, type Usage } from "../lib/llm/types.ts";
import {
  type QuotaClient,
  QuotaExceededError,
  reserveTokens,
  settleTokens,
  type TokenReservation,
} from "../lib/quota.ts";
import type { Logger } from "../lib/log.ts";
import { requireReadyRepo } from "../lib/repos.ts";
import { concatBytes } from "../lib/bytes.ts";
import type { JobContext, JobHandler } from "./worker.ts";

export interface GenerateDeps {
  kv: Deno.Kv;
  clock: Clock;
  models: ModelDeps;
  log: Logger;
  writer?: WriterOptions;
}

/** Tokens of whole files each kind gets; concepts lean on retrieval passages instead. */
const FILE_BUDGET = { overview: 24_000, slides: 16_000, podcast: 16_000, concepts: 4_000 };
const OUTPUT_TOKENS = 4_096;

/**
 * Reserves the generation's tokens against the quota of the client that started it (see
 * routes/artifacts.ts); a used-up quota fails the job for good with quota_exceeded.
 */
async function reserveFor(kv: Deno.Kv, clock: Clock, job: JobRecord, estimate: number) {
  const client = job.payload.quotaClient as QuotaClient | undefined;
  if (!client) return null;
  try {
    return await reserveTokens(kv, clock, client, estimate);
  } catch (e) {
    if (e instanceof QuotaExceededError) throw new PermanentJobError(e.code, e.message, 429);
    throw e;
  }
}

/** Handles `generate` jobs. */
export function generateHandler(deps: GenerateDeps): JobHandler {
  const { kv, clock, models } = deps;
  const artifactOf = (job: JobRecord) => kv.get<ArtifactRecord>(keys.artifact(job.subject.artifactId!));

  /** A model slot and `estimate` tokens of this minute, or a DeferJobError: the job waits for them. */
  async function acquire(estimate: number): Promise<BudgetGrant> {
    const grant = await models.budget.tryAcquire(estimate);
    if ("waitMs" in grant) {
      throw new DeferJobError(grant.waitMs, `waiting for model capacity (${grant.reason})`);
    }
    return grant;
  }

  async function run(job: JobRecord, ctx: JobContext) {
    const art = (await artifactOf(job)).value;
    if (!art || art.jobId !== job.id) {
      throw new PermanentJobError("not_found", "The artifact was replaced.", 404);
    }
    const provider = art.offline ? models.offline : models.llm;
    if (art.status === "done") {
      if (art.audio?.status === "generating") await speak(art, provider, ctx);
      return;
    }
    const repo = await requireReadyRepo(kv, clock, art.repoId).catch(() => {
      throw new PermanentJobError("repo_not_found", "The repository expired; ingest it again.", 404);
    });
    await ctx.progress("reading", 0, 1);
    const context = await buildContext(kv, repo, {
      fileTokens: FILE_BUDGET[art.kind],
      query: art.kind === "concepts" ? art.options.concept : undefined,
    });
    const task: GenerationTask = {
      kind: art.kind,
      expertise: art.options.expertise,
      concept: art.options.concept,
      context,
    };
    const estimate = context.files.reduce((n, f) => n + f.tokens, 0) + OUTPUT_TOKENS;
    const grant = provider.offline ? null : await acquire(estimate);
    let reservation: TokenReservation | null = null;
    let writer: ArtifactWriter;
    // the grant renews its slot while held: every way out before the model call must release it
    try {
      if (!provider.offline) reservation = await reserveFor(kv, clock, job, estimate);
      await ctx.progress("generating", 0, 1);
      writer = new ArtifactWriter(
        kv,
        art,
        ctx.leaseCheck,
        ctx.leaseLost,
        await readText(kv, art),
        deps.writer,
      );
    } catch (e) {
      await grant?.release(0);
      if (reservation) await settleTokens(kv, reservation, 0);
      throw e;
    }
    let usage: Usage = { inputTokens: 0, outputTokens: 0 };
    let done: ArtifactRecord;
    try {
      const stream = provider.offline ? provider.generate(task, ctx.signal) : resilientStream(
        () => provider.generate(task, ctx.signal),
        models.circuit,
        ctx.signal,
        models.retry,
        (e) => recordModelCall(provider.name, "generate", {}, failureCode(e)),
      );
      for await (const delta of stream) {
        if (delta.text) await writer.push(delta.text);
        if (delta.usage) usage = delta.usage;
      }
      const audio = art.kind === "podcast" && provider.speech ? { status: "generating" as const } : undefined;
      done = await writer.finish({ status: "done", usage, error: undefined, audio });
    } catch (e) {
      // a retried job would make a new call that cannot repeat the text viewers already saw
      throw e instanceof LlmFailedError && e.afterText ? interruptedError() : e;
    } finally {
      writer.close();
      await grant?.release(usage.inputTokens + usage.outputTokens);
      if (reservation) await settleTokens(kv, reservation, usage.inputTokens + usage.outputTokens);
    }
    recordModelCall(provider.name, "generate", usage);
    if (done.audio) await speak(done, provider, ctx);
  }

  /** Speaks the podcast script turn by turn with two voices and stores the MP3 as a blob. */
  async function speak(art: ArtifactRecord, provider: LlmProvider, ctx: JobContext): Promise<void> {
    const voices = models.ttsVoices;
    const speech = provider.speech?.bind(provider);
    // one slot for all the turns (renewed while held); no tokens: speech is not priced in them
    const grant = speech ? await acquire(0) : null;
    let audio: ArtifactRecord["audio"];
    try {
      // a retried job finds speech unconfigured if the app restarted without TTS_MODEL
      if (!speech) throw new Error("speech synthesis is not configured");
      const turns = (await readText(kv, art)).split("\n").map((l) => l.trim()).filter(Boolean);
      const parts: Uint8Array[] = [];
      for (const line of turns) {
        const host = PODCAST_HOSTS.findIndex((h) => line.startsWith(`${h}:`));
        const text = host === -1 ? line : line.slice(PODCAST_HOSTS[host].length + 1).trim();
        if (!text) continue;
        const voice = voices[Math.max(0, host) % voices.length];
        parts.push(
          await resilientCall(
            () => speech(text, voice, ctx.signal),
            models.speechCircuit,
            ctx.signal,
            models.retry,
            (e) => recordModelCall(provider.name, "speech", {}, failureCode(e)),
          ),
        );
        recordModelCall(provider.name, "speech");
      }
      const bytes = concatBytes(parts);
      const expireIn = timeLeft(art, clock.now());
      await putBlob(kv, keys.artifactData(art.id, "audio"), bytes, expireIn);
      audio = { status: "ready", bytes: bytes.byteLength };
    } catch (e) {
      if (ctx.signal.aborted) throw e;
      deps.log.warn("podcast audio failed", { artifactId: art.id, error: e });
      audio = { status: "failed", error: "Speech synthesis failed." };
    } finally {
      await grant?.release();
    }
    const entry = await kv.get<ArtifactRecord>(keys.artifact(art.id));
    const current = entry.value;
    if (!current) return;
    await commitWithRetry(() =>
      kv.atomic().check(ctx.leaseCheck()).check(entry)
        .set(keys.artifact(art.id), { ...current, audio }, { expireIn: timeLeft(current, clock.now()) })
        .commit()
    );
  }

  return {
    run,
    async onFailed(job, error) {
      const entry = await artifactOf(job);
      const art = entry.value;
      if (!art || art.jobId !== job.id) return;
      if (art.status === "done" && art.audio?.status !== "generating") return;
      // a done podcast keeps its script; only the audio the job did not finish has failed
      const failed: ArtifactRecord = art.status === "done"
        ? { ...art, audio: { status: "failed", error: `Speech synthesis failed. ${error.message}` } }
        : { ...art, status: "failed", error, updatedAt: clock.now() };
      return (atomic) =>
        atomic.check(entry).set(keys.artifact(art.id), failed, { expireIn: timeLeft(art, clock.now()) });
    },
  };
}
