/**
 * Retries a model stream on 429 (honouring Retry-After), 5xx, timeouts, stalls, dropped
 * connections and malformed chunks — but only before any text was published, since published
 * text cannot be taken back. Every outcome feeds the shared circuit breaker.
 */
import OpenAI from "openai";
import { AppError } from "../errors.ts";
import { backoffMs } from "../jobs.ts";
import type { Circuit } from "./circuit.ts";
import { StreamStalledError } from "./openai_provider.ts";
import type { Delta } from "./types.ts";

export interface RetryOptions {
  maxRetries: number;
  baseMs: number;
  capMs: number;
}

/** The model call failed and will not be retried. */
export class LlmFailedError extends AppError {
  constructor(detail: string) {
    super(502, "llm_failed", `The model call failed (${detail}). Ask again to retry.`);
  }
}

function retryAfterMs(e: unknown): number {
  if (e instanceof OpenAI.APIError) {
    const seconds = Number(e.headers?.get("retry-after"));
    if (Number.isFinite(seconds) && seconds > 0) return Math.min(seconds, 60) * 1000;
  }
  return 0;
}

/** Transient failures worth another try; client errors (bad key, bad request) are not. */
export function isRetryable(e: unknown): boolean {
  if (e instanceof OpenAI.APIConnectionError || e instanceof StreamStalledError) return true;
  if (e instanceof OpenAI.APIError) {
    return e.status === undefined || e.status === 408 || e.status === 429 || e.status >= 500;
  }
  return e instanceof TypeError || e instanceof SyntaxError;
}

/** A short label for a failed call, for metrics: the HTTP status or the kind of failure. */
export function failureCode(e: unknown): string {
  if (e instanceof OpenAI.APIError && e.status) return String(e.status);
  if (e instanceof StreamStalledError) return "stalled";
  if (e instanceof SyntaxError) return "malformed";
  if (e instanceof TypeError || e instanceof OpenAI.APIConnectionError) return "dropped";
  return "other";
}

function describe(e: unknown): string {
  if (e instanceof OpenAI.APIError && e.status) return `status ${e.status}`;
  if (e instanceof StreamStalledError) return "the model stopped responding";
  if (e instanceof SyntaxError) return "a malformed response";
  if (e instanceof TypeError || e instanceof OpenAI.APIConnectionError) return "the connection dropped";
  return e instanceof Error ? e.name : "unknown error";
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(done, ms);
    function done() {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }
    function onAbort() {
      clearTimeout(timer);
      reject(signal.reason);
    }
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** Streams `start()`, retrying transient failures before the first text; see the module doc. */
export async function* resilientStream(
  start: () => AsyncIterable<Delta>,
  circuit: Circuit | null,
  signal: AbortSignal,
  options: RetryOptions,
  onError?: (e: unknown, willRetry: boolean) => void,
): AsyncGenerator<Delta> {
  for (let attempt = 0;; attempt++) {
    await circuit?.admit();
    let published = false;
    try {
      for await (const delta of start()) {
        if (delta.text) published = true;
        yield delta;
      }
      await circuit?.success();
      return;
    } catch (e) {
      if (signal.aborted) throw signal.reason ?? e;
      if (e instanceof AppError) throw e;
      const retryable = isRetryable(e);
      if (retryable) await circuit?.failure();
      const willRetry = retryable && !published && attempt < options.maxRetries;
      onError?.(e, willRetry);
      if (!willRetry) throw new LlmFailedError(describe(e));
      await sleep(Math.max(retryAfterMs(e), backoffMs(attempt, options.baseMs, options.capMs)), signal);
    }
  }
}
