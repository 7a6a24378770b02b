/** Artifact routes: ask for one (single flight), read it, stream it to any number of viewers, hear it. */
import { Hono } from "hono";
import { z } from "zod";
import {
  artifactId,
  type ArtifactRecord,
  publicArtifact,
  readText,
  requestArtifact,
  requireArtifact,
  unexpired,
} from "../lib/artifacts.ts";
import type { LiveArtifact } from "../lib/artifact_hub.ts";
import { getBlobMeta, streamBlob } from "../lib/blobs.ts";
import type { AppDeps } from "../lib/deps.ts";
import { AppError, NotFoundError } from "../lib/errors.ts";
import { keys } from "../lib/keys.ts";
import { LlmUnavailableError } from "../lib/llm/circuit.ts";
import { clientOf } from "../lib/client.ts";
import { assertQuotaLeft, type QuotaClient, QuotaExceededError } from "../lib/quota.ts";
import { requireReadyRepo } from "../lib/repos.ts";
import { type SseEvent, type SseEvents, sseResponse } from "../lib/sse.ts";
import { idParam, jsonBody } from "./validate.ts";

const artifactBody = z.object({
  kind: z.enum(["overview", "slides", "podcast", "concepts"]),
  expertise: z.enum(["beginner", "intermediate", "expert"]).default("intermediate"),
  concept: z.string().trim().min(1).max(200).optional(),
}).strict().refine((b) => (b.kind === "concepts") === (b.concept !== undefined), {
  message: "concept is required for kind concepts, and only for it",
});

/**
 * A finished artifact never changes (once its audio, if any, is settled), so each process keeps
 * the JSON of the most read ones: a read of a finished artifact costs no KV round trip. Bounded,
 * and expiry is still checked on every hit; KV stays the truth.
 */
const finished = new Map<string, { expiresAt: number; content: string; json: string }>();
const FINISHED_CACHE = 500;

function isSettled(a: ArtifactRecord): boolean {
  return a.status === "done" && a.audio?.status !== "generating";
}

async function contentOf(kv: Deno.Kv, a: ArtifactRecord): Promise<string> {
  const hit = finished.get(a.id);
  if (hit) return hit.content;
  const content = await readText(kv, a);
  if (isSettled(a)) {
    finished.set(a.id, { expiresAt: a.expiresAt, content, json: JSON.stringify(publicArtifact(a, content)) });
    if (finished.size > FINISHED_CACHE) finished.delete(finished.keys().next().value!);
  }
  return content;
}

function resumeAfter(header: string | undefined, query: string | undefined): number {
  const raw = header ?? query;
  if (raw === undefined || raw === "") return 0;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) {
    throw new AppError(400, "invalid_request", "Last-Event-ID and from must be a sequence number.");
  }
  return n;
}

/** How long a viewer waits before reading a batch again after a failed KV read. */
const READ_RETRY_MS = 250;

/**
 * One viewer's events: what is committed past its position, then `done` or `error`. Written as a
 * plain iterator that answers at once whenever it can: a caught-up viewer woken by the hub takes
 * the shared bytes synchronously, then waits on the one promise the hub shares among all waiting
 * viewers.
 */
class ArtifactViewer implements SseEvents {
  #next: number;
  #ended = false;

  /** `live` must be ready (its first read done). */
  constructor(private readonly live: LiveArtifact, after: number, private readonly leave: () => void) {
    this.#next = after + 1;
  }

  next(): IteratorResult<SseEvent | Uint8Array> | Promise<IteratorResult<SseEvent | Uint8Array>> {
    if (this.#ended) return { value: undefined, done: true };
    const rec = this.live.record;
    if (!rec) {
      return this.#last({
        id: this.#next - 1,
        event: "error",
        data: { code: "not_found", message: "The artifact is gone." },
      });
    }
    if (rec.textSeq >= this.#next) {
      const ready = this.live.readyDeltaEvents(rec.gen, this.#next, rec.textSeq);
      if (ready) return this.#send(ready);
      return this.live.deltaEvents(rec.gen, this.#next, rec.textSeq).then(
        (chunk) => (chunk ? this.#send(chunk) : this.live.changed().then(this.#resume)),
        // a failed KV read (a local file locked by another process) is not the artifact failing:
        // read again shortly, from the same position
        () => new Promise((r) => setTimeout(r, READ_RETRY_MS)).then(this.#resume),
      );
    }
    if (rec.status === "done") {
      return this.live.finalEvent(rec, () => ({ id: rec.textSeq, event: "done", data: publicArtifact(rec) }))
        .then(this.#end);
    }
    if (rec.status === "failed") {
      return this.live.finalEvent(rec, () => ({
        id: rec.textSeq,
        event: "error",
        data: rec.error ?? { code: "failed", message: "The generation failed." },
      })).then(this.#end);
    }
    return this.live.changed().then(this.#resume);
  }

  readonly #resume = () => this.next();
  readonly #end = (event: Uint8Array) => this.#last(event);

  #send(chunk: { bytes: Uint8Array; last: number }): IteratorResult<Uint8Array> {
    this.#next = chunk.last + 1;
    return { value: chunk.bytes, done: false };
  }

  #last(event: SseEvent | Uint8Array): IteratorResult<SseEvent | Uint8Array> {
    this.#ended = true;
    return { value: event, done: false };
  }

  /** The client left (or the stream ended): stop, and leave the hub once. */
  return(): void {
    this.#ended = true;
    this.leave();
  }
}

/** POST /api/repos/:repoId/artifacts (mounted under /api/repos). */
export function artifactRequestRoutes(deps: AppDeps) {
  const { kv, clock, jobs, models } = deps;
  const app = new Hono();
  app.post("/:repoId/artifacts", async (c) => {
    const repo = await requireReadyRepo(kv, clock, idParam(c, "repoId"));
    const body = await jsonBody(c, artifactBody, 4 * 1024);
    const options = { expertise: body.expertise, ...(body.concept ? { concept: body.concept } : {}) };
    let provider = models.llm;
    let quotaClient: QuotaClient | undefined;
    if (!provider.offline) {
      const existing = (await kv.get<ArtifactRecord>(
        keys.artifact(await artifactId(repo.id, body.kind, options, provider.model)),
      )).value;
      // Reading or joining an artifact costs no model call, so neither the circuit nor quotas apply;
      // a burst of requests for a new one only checks that quota is left (see queues/generate.ts).
      if (!existing || existing.status === "failed") {
        const wait = await models.circuit.retryAfterSeconds();
        if (wait > 0 && !models.fallbackToOffline) throw new LlmUnavailableError(wait);
        if (wait > 0) provider = models.offline;
        else {
          try {
            const client = await clientOf(deps, c);
            await assertQuotaLeft(kv, clock, client);
            quotaClient = { id: client.id, quota: client.quota };
          } catch (e) {
            if (!(e instanceof QuotaExceededError && models.fallbackToOffline)) throw e;
            provider = models.offline;
          }
        }
      }
    }
    const answer = await requestArtifact(kv, clock, jobs, {
      repoId: repo.id,
      kind: body.kind,
      options,
      model: provider.model,
      offline: provider.offline,
      // The job that calls the model reserves the tokens for the client that started it.
      payload: quotaClient ? { quotaClient } : {},
      ttlMs: deps.config.repoTtlMs,
    });
    if (answer.artifact.status === "done") {
      return c.json({ artifact: publicArtifact(answer.artifact, await contentOf(kv, answer.artifact)) }, 200);
    }
    const job = answer.job ? await jobs.toPublic(answer.job) : undefined;
    return c.json({ artifact: publicArtifact(answer.artifact), ...(job ? { job } : {}) }, 202);
  });
  return app;
}

/** Routes under /api/artifacts. */
export function artifactRoutes(deps: AppDeps) {
  const { kv, clock, models } = deps;
  const app = new Hono();

  app.get("/:artifactId", async (c) => {
    const id = idParam(c, "artifactId");
    const hit = finished.get(id);
    if (hit && hit.expiresAt > clock.now()) {
      return c.body(hit.json, 200, { "Content-Type": "application/json; charset=utf-8" });
    }
    const a = await requireArtifact(kv, clock, id);
    return c.json(publicArtifact(a, a.status === "done" ? await contentOf(kv, a) : undefined));
  });

  app.get("/:artifactId/stream", async (c) => {
    const id = idParam(c, "artifactId");
    const after = resumeAfter(c.req.header("last-event-id"), c.req.query("from"));
    // the process's live view answers for an artifact others are watching: no KV read per viewer
    const { live, leave } = models.hub.join(id);
    await live.ready();
    try {
      unexpired(live.record, clock);
    } catch (e) {
      leave();
      throw e;
    }
    const viewer = new ArtifactViewer(live, after, leave);
    return sseResponse(viewer, { log: deps.log, onClose: () => viewer.return() });
  });

  app.get("/:artifactId/audio", async (c) => {
    const a = await requireArtifact(kv, clock, idParam(c, "artifactId"));
    const base = keys.artifactData(a.id, "audio");
    const meta = a.audio?.status === "ready" ? await getBlobMeta(kv, base) : null;
    if (!meta) {
      throw new NotFoundError(
        a.kind !== "podcast"
          ? "Only podcasts have audio."
          : a.audio?.status === "generating"
          ? "The audio is still being made; try again shortly."
          : "No audio: speech synthesis is not configured, or it failed.",
        "audio_unavailable",
      );
    }
    // a regenerated podcast (a new generation of the artifact) has new audio under the same URL
    const etag = `"${a.gen}-${meta.size}"`;
    // RFC 9110 §13.1.5: a Range is honoured only for the representation If-Range names
    const ifRange = c.req.header("if-range");
    const range = parseRange(
      ifRange === undefined || ifRange === etag ? c.req.header("range") : undefined,
      meta.size,
    );
    if (range === "unsatisfiable") {
      throw new AppError(
        416,
        "range_not_satisfiable",
        `The requested range is outside the audio's ${meta.size} bytes.`,
        {},
        { "Content-Range": `bytes */${meta.size}` },
      );
    }
    const [start, end] = range ?? [0, meta.size - 1];
    const headers: Record<string, string> = {
      "Content-Type": "audio/mpeg",
      "Accept-Ranges": "bytes",
      ETag: etag,
      "Cache-Control": "public, max-age=86400",
      "Content-Length": String(end - start + 1),
    };
    if (range) headers["Content-Range"] = `bytes ${start}-${end}/${meta.size}`;
    return new Response(streamBlob(kv, base, meta, start, end + 1), { status: range ? 206 : 200, headers });
  });

  return app;
}

/**
 * The one byte range a `Range` header asks for, as [start, end] inclusive; "unsatisfiable" when
 * none of it is in the body (416). null, and the whole body is sent, when there is no header or
 * it is to be ignored (RFC 9110 §14.2): a unit other than bytes, an invalid range (last < first),
 * or several ranges, which a server may answer with the whole body.
 */
export function parseRange(
  header: string | undefined,
  size: number,
): [number, number] | null | "unsatisfiable" {
  const m = header && /^\s*bytes\s*=\s*(\d*)-(\d*)\s*$/i.exec(header);
  if (!m || (m[1] === "" && m[2] === "")) return null;
  if (m[1] !== "" && m[2] !== "" && Number(m[2]) < Number(m[1])) return null;
  let start: number;
  let end: number;
  if (m[1] === "") {
    start = Math.max(0, size - Number(m[2]));
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  return start > end || start >= size ? "unsatisfiable" : [start, end];
}
