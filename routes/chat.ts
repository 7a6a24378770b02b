/**
 * POST /api/repos/:repoId/chat — per person, streamed straight to the client (not through the
 * queue) with backpressure: the next model chunk is read only when the client took the last one.
 * Closing the connection aborts the model call.
 */
import { Hono } from "hono";
import { z } from "zod";
import type { AppDeps } from "../lib/deps.ts";
import { LimitError, NotFoundError } from "../lib/errors.ts";
import { countTokens } from "../lib/tokens.ts";
import { buildContext, readPassage } from "../lib/llm/context.ts";
import { failureCode, resilientStream } from "../lib/llm/resilient.ts";
import { recordModelCall } from "../lib/metrics.ts";
import type { ChatMessage, ChatTask, Usage } from "../lib/llm/types.ts";
import { clientOf } from "../lib/client.ts";
import { LlmUnavailableError } from "../lib/llm/circuit.ts";
import { fitsPathLimit } from "../lib/paths.ts";
import { QuotaExceededError, reserveTokens, settleTokens, type TokenReservation } from "../lib/quota.ts";
import { requireReadyRepo } from "../lib/repos.ts";
import { type SseEvent, sseResponse } from "../lib/sse.ts";
import { AppError } from "../lib/errors.ts";
import type { BudgetGrant } from "../lib/llm/budget.ts";
import { idParam, jsonBody } from "./validate.ts";

const chatBody = z.object({
  messages: z.array(
    z.object({
      role: z.enum(["user", "assistant"]),
      content: z.string().min(1).max(8000),
    }).strict(),
  ).min(1).max(50).refine((m) => m.at(-1)?.role === "user", "the last message must be the user's"),
  selection: z.object({
    path: z.string().min(1).refine(fitsPathLimit, "a path is at most 1024 bytes"),
    startLine: z.number().int().min(1),
    endLine: z.number().int().min(1),
  }).strict().refine(
    (s) => s.endLine >= s.startLine && s.endLine - s.startLine < 400,
    "select at most 400 lines, start before end",
  )
    .optional(),
}).strict();

const HISTORY_TOKENS = 4_000;
const BUDGET_WAIT_MS = 5_000;

/** The most recent messages that fit the history budget (the last one always). */
export function boundHistory(messages: ChatMessage[], maxTokens = HISTORY_TOKENS): ChatMessage[] {
  const kept: ChatMessage[] = [];
  let used = 0;
  for (let i = messages.length - 1; i >= 0; i--) {
    const tokens = countTokens(messages[i].content);
    if (kept.length > 0 && used + tokens > maxTokens) break;
    kept.unshift(messages[i]);
    used += tokens;
  }
  return kept;
}

export function chatRoutes(deps: AppDeps) {
  const { kv, clock, models } = deps;
  const app = new Hono();

  /** Waits briefly for a model slot; past that the answer is 503 overloaded with Retry-After. */
  async function acquire(estimate: number, signal: AbortSignal): Promise<BudgetGrant> {
    const deadline = Date.now() + BUDGET_WAIT_MS;
    while (true) {
      const grant = await models.budget.tryAcquire(estimate);
      if (!("waitMs" in grant)) return grant;
      if (Date.now() + grant.waitMs > deadline || signal.aborted) {
        throw new LimitError(
          503,
          "overloaded",
          "The model is busy with other requests; try again shortly.",
          grant.waitMs / 1000,
        );
      }
      await new Promise((r) => setTimeout(r, Math.max(250, grant.waitMs)));
    }
  }

  app.post("/:repoId/chat", async (c) => {
    const repo = await requireReadyRepo(kv, clock, idParam(c, "repoId"));
    const body = await jsonBody(c, chatBody, 128 * 1024);
    const messages = boundHistory(body.messages);
    const question = messages[messages.length - 1].content;
    const selection = body.selection
      ? await readPassage(kv, repo, body.selection.path, body.selection.startLine, body.selection.endLine)
      : undefined;
    if (body.selection && !selection) throw new NotFoundError("The selected file is not in this repository.");
    const context = await buildContext(kv, repo, {
      fileTokens: 0,
      query: [question, selection?.text ?? ""].join("\n"),
      passages: 8,
    });
    const task: ChatTask = { messages, selection: selection ?? undefined, context };
    let provider = models.llm;
    const abort = new AbortController();
    const onRequestAbort = () => abort.abort();
    c.req.raw.signal.addEventListener("abort", onRequestAbort, { once: true });
    const estimate = countTokens(JSON.stringify(messages)) +
      context.passages.reduce((n, p) => n + countTokens(p.text), 0) + 2_000;
    let reservation: TokenReservation | undefined;
    if (!provider.offline) {
      const wait = await models.circuit.retryAfterSeconds();
      if (wait > 0 && !models.fallbackToOffline) throw new LlmUnavailableError(wait);
      if (wait > 0) provider = models.offline;
      else {
        try {
          reservation = await reserveTokens(kv, clock, await clientOf(deps, c), estimate);
        } catch (e) {
          if (!(e instanceof QuotaExceededError && models.fallbackToOffline)) throw e;
          provider = models.offline;
        }
      }
    }
    let grant: BudgetGrant | null = null;
    try {
      if (!provider.offline) grant = await acquire(estimate, abort.signal);
    } catch (e) {
      if (reservation) await settleTokens(kv, reservation, 0);
      throw e;
    }
    let started = false;
    const sources = [
      ...(selection
        ? [{ path: selection.path, startLine: selection.startLine, endLine: selection.endLine, score: null }]
        : []),
      ...context.passages.map((p) => ({
        path: p.path,
        startLine: p.startLine,
        endLine: p.endLine,
        score: p.score ?? 0,
      })),
    ];

    async function* events(): AsyncGenerator<SseEvent> {
      started = true;
      let seq = 0;
      let usage: Usage = { inputTokens: 0, outputTokens: 0 };
      try {
        yield { id: ++seq, event: "sources", data: sources };
        const stream = provider.offline ? provider.chat(task, abort.signal) : resilientStream(
          () => provider.chat(task, abort.signal),
          models.circuit,
          abort.signal,
          models.retry,
          (e) => recordModelCall(provider.name, "chat", {}, failureCode(e)),
        );
        for await (const delta of stream) {
          if (delta.text) yield { id: ++seq, event: "delta", data: { text: delta.text } };
          if (delta.usage) usage = delta.usage;
        }
        recordModelCall(provider.name, "chat", usage);
        yield { id: ++seq, event: "done", data: { usage } };
      } catch (e) {
        if (abort.signal.aborted) return;
        const err = e instanceof AppError ? e : null;
        if (!err) deps.log.error("chat failed", { error: e });
        yield {
          id: ++seq,
          event: "error",
          data: { code: err?.code ?? "internal", message: err?.message ?? "The answer failed; try again." },
        };
      } finally {
        c.req.raw.signal.removeEventListener("abort", onRequestAbort);
        abort.abort();
        await grant?.release(usage.inputTokens + usage.outputTokens);
        if (reservation) await settleTokens(kv, reservation, usage.inputTokens + usage.outputTokens);
      }
    }
    return sseResponse(events(), {
      log: deps.log,
      onClose: () => {
        abort.abort();
        // A client gone before the first event never ran the generator's cleanup.
        if (!started) {
          grant?.release();
          if (reservation) settleTokens(kv, reservation, 0).catch(() => {});
        }
      },
    });
  });

  return app;
}
