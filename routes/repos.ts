/** Repository routes: ingest by URL or upload, and reads of a ready repo's data. */
import { type Context, Hono } from "hono";
import { z } from "zod";
import { getBlobMeta, streamBlob } from "../lib/blobs.ts";
import { ingestCapFor } from "../lib/caps.ts";
import { clientOf } from "../lib/client.ts";
import type { AppDeps } from "../lib/deps.ts";
import { digestStream, readTree } from "../lib/digest.ts";
import { AppError, NotFoundError } from "../lib/errors.ts";
import { assertValidGlobs } from "../lib/filters.ts";
import { keys } from "../lib/keys.ts";
import { requestGitHubIngest } from "../lib/repo_requests.ts";
import { fitsPathLimit } from "../lib/paths.ts";
import { findFileBlob, publicRepo, requireReadyRepo, requireRepo } from "../lib/repos.ts";
import { ingestUpload, uploadTooLarge } from "../lib/upload.ts";
import { idParam, jsonBody } from "./validate.ts";

const globs = z.array(z.string().min(1).max(200)).max(50);

const ingestBody = z.object({
  url: z.string().min(1).max(2000),
  ref: z.string().min(1).max(255).optional(),
  include: globs.optional(),
  exclude: globs.optional(),
}).strict();

/** Routes under /api/repos. */
export function repoRoutes(deps: AppDeps) {
  const { kv, clock, config, jobs } = deps;
  const app = new Hono();
  /** The caller's cap on running ingests (taken here, where it is known whether one starts). */
  const ingestCap = async (c: Context) => ingestCapFor(deps, (await clientOf(deps, c)).id);

  app.post("/", async (c) => {
    const body = await jsonBody(c, ingestBody, 16 * 1024);
    assertValidGlobs([...body.include ?? [], ...body.exclude ?? []]);
    const answer = await requestGitHubIngest({
      kv,
      clock,
      jobs,
      github: config.github,
      repoTtlMs: config.repoTtlMs,
      ingestCap: await ingestCap(c),
    }, body);
    if (!answer.job) return c.json({ repo: publicRepo(answer.repo) }, 200);
    return c.json({ repo: publicRepo(answer.repo), job: await jobs.toPublic(answer.job) }, 202);
  });

  app.post("/upload", async (c) => {
    const type = c.req.header("content-type") ?? "";
    if (!/^multipart\/form-data\b/i.test(type)) {
      throw new AppError(
        415,
        "unsupported_media_type",
        "Send the archive as multipart/form-data in a field named file.",
      );
    }
    const declared = Number(c.req.header("content-length") ?? 0);
    if (declared > config.limits.uploadBytes + 64 * 1024) throw uploadTooLarge(config.limits.uploadBytes);
    const body = c.req.raw.body;
    if (!body) throw new AppError(400, "invalid_request", "The upload is empty.");
    // an upload is a new ingest every time (no two are the same repo), run inside this request
    const repo = await (await ingestCap(c)).hold(() =>
      ingestUpload(
        {
          kv,
          clock,
          limits: config.limits,
          repoTtlMs: config.repoTtlMs,
          draining: () => deps.drain.draining,
        },
        body,
        type,
        c.req.raw.signal,
      )
    );
    return c.json({ repo: publicRepo(repo) }, 200);
  });

  app.get("/:repoId", async (c) => {
    const repo = await requireRepo(kv, clock, idParam(c, "repoId"));
    return c.json(publicRepo(repo));
  });

  app.get("/:repoId/tree", async (c) => {
    const repo = await requireReadyRepo(kv, clock, idParam(c, "repoId"));
    const base = keys.repoTree(repo.id, repo.gen);
    const meta = await getBlobMeta(kv, base);
    if (!meta) throw new NotFoundError();
    return new Response(streamBlob(kv, base, meta), {
      headers: { "Content-Type": "application/json; charset=utf-8" },
    });
  });

  app.get("/:repoId/files/*", async (c) => {
    const repo = await requireReadyRepo(kv, clock, idParam(c, "repoId"));
    const prefix = `/api/repos/${repo.id}/files/`;
    const rawPath = new URL(c.req.url).pathname.slice(prefix.length);
    let path: string;
    try {
      path = decodeURIComponent(rawPath);
    } catch {
      throw new NotFoundError("No such file.");
    }
    if (!path || !fitsPathLimit(path)) throw new NotFoundError("No such file.");
    const found = await findFileBlob(kv, repo, path);
    if (!found) throw new NotFoundError(`No file ${path.slice(0, 200)} in this repository.`);
    return new Response(streamBlob(kv, found.key, found.meta), {
      headers: { "Content-Type": "text/plain; charset=utf-8", "Content-Length": String(found.meta.size) },
    });
  });

  app.get("/:repoId/digest", async (c) => {
    const repo = await requireReadyRepo(kv, clock, idParam(c, "repoId"));
    const raw = c.req.query("maxTokens");
    let maxTokens: number | undefined;
    if (raw !== undefined) {
      maxTokens = Number(raw);
      if (!Number.isInteger(maxTokens) || maxTokens < 1 || maxTokens > 100_000_000) {
        throw new AppError(400, "invalid_request", "maxTokens must be a whole number from 1 to 100,000,000.");
      }
    }
    const tree = await readTree(kv, repo);
    return new Response(digestStream(kv, repo, tree, maxTokens), {
      headers: { "Content-Type": "text/plain; charset=utf-8" },
    });
  });

  return app;
}
