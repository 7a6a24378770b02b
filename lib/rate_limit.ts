/**
 * Rate limits in Deno KV, exact across processes. Each (policy, client) has a fixed-window counter
 * whose key holds the window number, so an old window is never read again and simply expires.
 * Admission is a check-and-set on the counter's versionstamp: read n, admit k = min(waiting,
 * limit − n), commit n + k only if nobody wrote since the read; otherwise read again (with jitter).
 * So a limit of 10 lets exactly 10 through however many processes share the KV.
 *
 * Within a process, requests for the same counter are group-committed: while one commit is in
 * flight, the next arrivals wait and go together in the following commit. A hot counter then costs
 * one KV round trip per batch instead of a storm of conflicting commits.
 */
import type { Clock } from "./clock.ts";
import type { Client } from "./client.ts";
import type { PolicyName, RatePolicy } from "./config.ts";
import { LimitError } from "./errors.ts";
import { keys } from "./keys.ts";
import { metrics } from "./metrics.ts";

/** The outcome of one request against one policy. */
export interface RateDecision {
  policy: PolicyName;
  allowed: boolean;
  /** The limit after the client's tier multiplier. */
  limit: number;
  windowSeconds: number;
  remaining: number;
  /** Seconds until the current window ends. */
  resetSeconds: number;
}

interface Waiter {
  resolve(count: { admitted: boolean; after: number }): void;
  reject(e: unknown): void;
}

interface KeyQueue {
  key: Deno.KvKey;
  limit: number;
  expireIn: number;
  waiting: Waiter[];
}

/** How long admission keeps retrying a contended or locked counter before giving up with 503. */
const DEADLINE_MS = 5_000;

function isTransient(e: unknown): boolean {
  return e instanceof Error && /database is locked|busy/i.test(e.message);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The limit a client gets under a policy: the policy's, times the tier multiplier. */
export function effectiveLimit(policy: RatePolicy, client: Pick<Client, "multiplier">): number {
  return Math.floor(policy.limit * client.multiplier);
}

/** Fixed-window counters shared through KV; one per process (see `rateLimiterFor`). */
export class RateLimiter {
  readonly #queues = new Map<string, KeyQueue>();

  constructor(
    private readonly kv: Deno.Kv,
    private readonly clock: Clock,
    private readonly policies: Record<PolicyName, RatePolicy>,
  ) {}

  #window(policy: PolicyName) {
    const p = this.policies[policy];
    const windowMs = p.windowSeconds * 1000;
    const now = this.clock.now();
    const window = Math.floor(now / windowMs);
    return {
      p,
      windowMs,
      window,
      resetSeconds: Math.max(1, Math.ceil(((window + 1) * windowMs - now) / 1000)),
    };
  }

  /** Counts one request by `client` under `policy` and says whether it may go ahead. */
  async hit(policy: PolicyName, client: Client): Promise<RateDecision> {
    const { p, windowMs, window, resetSeconds } = this.#window(policy);
    const limit = effectiveLimit(p, client);
    const key = keys.rateWindow(policy, client.id, window);
    const { admitted, after } = await this.#admit(key, limit, windowMs + 60_000);
    if (!admitted) metrics.rateLimited.inc({ policy });
    return {
      policy,
      allowed: admitted,
      limit,
      windowSeconds: p.windowSeconds,
      remaining: Math.max(0, limit - after),
      resetSeconds,
    };
  }

  /** The client's standing under `policy` without counting a request (for GET /api/usage). */
  async peek(policy: PolicyName, client: Client): Promise<RateDecision> {
    const { p, window, resetSeconds } = this.#window(policy);
    const limit = effectiveLimit(p, client);
    const used = (await this.kv.get<number>(keys.rateWindow(policy, client.id, window))).value ?? 0;
    return {
      policy,
      allowed: used < limit,
      limit,
      windowSeconds: p.windowSeconds,
      remaining: Math.max(0, limit - used),
      resetSeconds,
    };
  }

  #admit(key: Deno.KvKey, limit: number, expireIn: number): Promise<{ admitted: boolean; after: number }> {
    return new Promise((resolve, reject) => {
      const id = JSON.stringify(key);
      const queue = this.#queues.get(id);
      if (queue) {
        queue.waiting.push({ resolve, reject });
        return;
      }
      const fresh: KeyQueue = { key, limit, expireIn, waiting: [{ resolve, reject }] };
      this.#queues.set(id, fresh);
      this.#drain(id, fresh);
    });
  }

  /** Commits batches for one counter until nobody is waiting on it. */
  async #drain(id: string, queue: KeyQueue): Promise<void> {
    try {
      while (queue.waiting.length) {
        const batch = queue.waiting.splice(0);
        try {
          const { before, admitted } = await this.#commit(queue, batch.length);
          batch.forEach((w, i) =>
            w.resolve(
              i < admitted ? { admitted: true, after: before + i + 1 } : {
                admitted: false,
                after: before + admitted,
              },
            )
          );
        } catch (e) {
          for (const w of batch) w.reject(e);
        }
      }
    } finally {
      this.#queues.delete(id);
    }
  }

  /** One check-and-set admitting up to `n` requests; retried until it commits or the deadline. */
  async #commit(queue: KeyQueue, n: number): Promise<{ before: number; admitted: number }> {
    const deadline = Date.now() + DEADLINE_MS;
    for (let attempt = 0;; attempt++) {
      const start = performance.now();
      try {
        const entry = await this.kv.get<number>(queue.key);
        const before = entry.value ?? 0;
        const admitted = Math.max(0, Math.min(n, queue.limit - before));
        if (admitted === 0) return { before, admitted };
        const result = await this.kv.atomic()
          .check(entry)
          .set(queue.key, before + admitted, { expireIn: queue.expireIn })
          .commit();
        if (result.ok) return { before, admitted };
      } catch (e) {
        if (!isTransient(e)) throw e;
      } finally {
        metrics.kvLatency.observe({ op: "rate_limit" }, (performance.now() - start) / 1000);
      }
      if (Date.now() > deadline) {
        throw new LimitError(503, "overloaded", "The service is too busy to count requests; try again.", 1);
      }
      await sleep(Math.random() * Math.min(100, 2 * 2 ** Math.min(attempt, 6)));
    }
  }
}

const limiters = new WeakMap<object, RateLimiter>();

/** The process's limiter for an app's dependencies, made on first use. */
export function rateLimiterFor(
  deps: { kv: Deno.Kv; clock: Clock; config: { rateLimits: Record<PolicyName, RatePolicy> } },
): RateLimiter {
  let limiter = limiters.get(deps);
  if (!limiter) {
    limiter = new RateLimiter(deps.kv, deps.clock, deps.config.rateLimits);
    limiters.set(deps, limiter);
  }
  return limiter;
}

/**
 * The IETF httpapi ratelimit-headers draft (-10) fields for a decision:
 * `RateLimit-Policy: "read";q=120;w=60` and `RateLimit: "read";r=119;t=42`.
 */
export function rateLimitHeaders(d: RateDecision): Record<string, string> {
  return {
    "RateLimit-Policy": `"${d.policy}";q=${d.limit};w=${d.windowSeconds}`,
    "RateLimit": `"${d.policy}";r=${d.remaining};t=${d.resetSeconds}`,
  };
}
