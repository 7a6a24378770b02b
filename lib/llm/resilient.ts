/**
 * Retries a model stream (or a single call, like speech) on 429 (honouring Retry-After), 5xx,
 * timeouts, stalls, dropped connections and malformed chunks — but only before any text was
 * published, since published text cannot be taken back. Every outcome feeds the shared circuit breaker. A refusal (bad key,
 * unknown model, bad request) is a PermanentJobError: retrying the job cannot help either.
 */
import { AppError, PermanentJobError } from "../errors.ts";
import { backoffMs } from "../jobs.ts";
import type { Circuit } from "./circuit.ts";
import { isApiError, isConnectionError, StreamStalledError } from "./openai_provider.ts";
import type { Delta } from "./types.ts";

export interface RetryOptions {
  maxRetries: number;
  baseMs: number;
  capMs: number;
}

/** The model call failed and will not be retried here; `afterText`: text had been streamed. */
export class LlmFailedError extends AppError {
  constructor(detail: string, readonly afterText = false) {
    super(502, "llm_failed", `The model call failed (${detail}). Ask again to retry.`);
  }
}

/** The model provider refused the call with a client error (4xx other than 408/429). */
export class LlmRefusedError extends PermanentJobError {
  constructor(status: number) {
    super("llm_failed", refusal(status), 502);
  }
}

function refusal(status: number): string {
  const fix = status === 401
    ? "refused the API key: OPENAI_API_KEY must be fixed"
    : status === 403
    ? "denied this API key access: its permissions for LLM_MODEL must be fixed"
    : status === 404
    ? "does not know the model or endpoint: LLM_MODEL and OPENAI_BASE_URL must be checked"
    : "rejected the request";
  return `The model provider ${fix} (status ${status}). Asking again will not help until then.`;
}

function retryAfterMs(e: unknown): number {
  if (isApiError(e)) {
    const seconds = Number(e.headers?.get("retry-after"));
    if (Number.isFinite(seconds) && seconds > 0) return Math.min(seconds, 60) * 1000;
  }
  return 0;
}

/** Transient failures worth another try; client errors (bad key, bad request) are not. */
export function isRetryable(e: unknown): boolean {
  if (isConnectionError(e) || e instanceof StreamStalledError) return true;
  if (isApiError(e)) {
    return e.status === undefined || e.status === 408 || e.status === 429 || e.status >= 500;
  }
  return e instanceof TypeError || e instanceof SyntaxError;
}

/** A short label for a failed call, for metrics: the HTTP status or the kind of failure. */
export function failureCode(e: unknown): string {
  if (isApiError(e) && e.status) return String(e.status);
  if (e instanceof StreamStalledError) return "stalled";
  if (e instanceof SyntaxError) return "malformed";
  if (e instanceof TypeError || isConnectionError(e)) return "dropped";
  return "other";
}

function describe(e: unknown): string {
  if (isApiError(e) && e.status) return `status ${e.status}`;
  if (e instanceof StreamStalledError) return "the model stopped responding";
  if (e instanceof SyntaxError) return "a malformed response";
  if (e instanceof TypeError || isConnectionError(e)) return "the connection dropped";
  return e instanceof Error ? e.name : "unknown error";
}

function failure(e: unknown, retryable: boolean, published: boolean): AppError {
  const refused = !retryable && isApiError(e) && e.status !== undefined && e.status < 500;
  return refused ? new LlmRefusedError(e.status) : new LlmFailedError(describe(e), published);
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
      if (!willRetry) throw failure(e, retryable, published);
      await sleep(Math.max(retryAfterMs(e), backoffMs(attempt, options.baseMs, options.capMs)), signal);
    }
  }
}

/** resilientStream's arguments after `start`: circuit, signal, retry options, onError. */
type RetryArgs = Parameters<typeof resilientStream> extends [unknown, ...infer R] ? R : never;

/** Makes a call that returns one value (speech) with the retries and circuit of resilientStream. */
export async function resilientCall<T>(call: () => Promise<T>, ...retry: RetryArgs): Promise<T> {
  let value: T | undefined;
  const once = async function* (): AsyncGenerator<Delta> {
    value = await call();
    yield {}; // no text: a failed call is retried like a stream that showed nothing
  };
  for await (const _ of resilientStream(once, ...retry)) { /* consumed */ }
  return value as T;
}
