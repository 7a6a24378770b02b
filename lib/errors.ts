/** An error a client can act on: carries the HTTP status, the API.md error code and a sentence. */
export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** 400: the request itself is malformed. */
export class BadRequestError extends AppError {
  constructor(code: string, message: string, extra?: Record<string, unknown>) {
    super(400, code, message, extra);
  }
}

/** 404: nothing at that id or path. */
export class NotFoundError extends AppError {
  constructor(message = "Nothing was found at that address.", code = "not_found") {
    super(404, code, message);
  }
}

/** 413/429/503 and friends: a limit was reached; `retryAfterSeconds` becomes Retry-After. */
export class LimitError extends AppError {
  constructor(
    status: number,
    code: string,
    message: string,
    retryAfterSeconds?: number,
    extra: Record<string, unknown> = {},
  ) {
    super(
      status,
      code,
      message,
      retryAfterSeconds === undefined ? extra : { ...extra, retryAfterSeconds },
      retryAfterSeconds === undefined
        ? {}
        : { "Retry-After": String(Math.max(1, Math.ceil(retryAfterSeconds))) },
    );
  }
}

/**
 * A job failure that retrying cannot fix (bad archive, repo too large): the job fails at once
 * with this code instead of being retried.
 */
export class PermanentJobError extends AppError {
  constructor(code: string, message: string, status = 422) {
    super(status, code, message);
  }
}

/** The shape of every error body in API.md. */
export function errorBody(code: string, message: string, extra: Record<string, unknown> = {}) {
  return { error: { code, message, ...extra } };
}

/**
 * Not a failure: the job cannot run yet (e.g. the model budget is full). The worker puts it back
 * in the queue after `delayMs` without spending an attempt.
 */
export class DeferJobError extends Error {
  constructor(readonly delayMs: number, reason: string) {
    super(reason);
    this.name = "DeferJobError";
  }
}
