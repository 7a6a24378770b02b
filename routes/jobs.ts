/** Job routes: status, and an SSE stream of its changes until it ends. */
import { Hono } from "hono";
import type { AppDeps } from "../lib/deps.ts";
import { NotFoundError } from "../lib/errors.ts";
import { isEnded, type JobRecord } from "../lib/jobs.ts";
import { keys } from "../lib/keys.ts";
import { watchKeys } from "../lib/kv_watch.ts";
import { type SseEvent, sseResponse } from "../lib/sse.ts";
import { idParam } from "./validate.ts";

/** Routes under /api/jobs. */
export function jobRoutes(deps: AppDeps) {
  const { jobs, kv } = deps;
  const app = new Hono();

  async function requireJob(id: string): Promise<JobRecord> {
    const job = await jobs.get(id);
    if (!job) throw new NotFoundError("No job with that id (it may have expired).");
    return job;
  }

  app.get("/:jobId", async (c) => {
    const job = await requireJob(idParam(c, "jobId"));
    return c.json(await jobs.toPublic(job));
  });

  app.get("/:jobId/events", async (c) => {
    const id = idParam(c, "jobId");
    await requireJob(id);
    const abort = new AbortController();
    async function* events(): AsyncGenerator<SseEvent> {
      let seq = 0;
      for await (const [entry] of watchKeys<JobRecord>(kv, [keys.job(id)], abort.signal)) {
        const job = entry.value;
        if (!job) {
          yield { event: "error", id: ++seq, data: { code: "not_found", message: "The job expired." } };
          return;
        }
        const view = await jobs.toPublic(job);
        if (!isEnded(job.status)) {
          yield { event: "progress", id: ++seq, data: view };
          continue;
        }
        if (job.status === "succeeded") yield { event: "done", id: ++seq, data: view };
        else {yield {
            event: "error",
            id: ++seq,
            data: job.error ?? { code: job.status, message: `The job ${job.status}.` },
          };}
        return;
      }
    }
    return sseResponse(events(), { log: deps.log, onClose: () => abort.abort() });
  });

  return app;
}
