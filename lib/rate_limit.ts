/**
 * Rate limits in Deno KV, exact across processes. Each (policy, client) has a fixed-window counter
 * whose key holds the window number, so an old window is never read again and simply expires.
 * Admission is a check-and-set on the counter's versionstamp: with n requests waiting and the
 * counter at c, admit k = min(n, limit − c) and commit c + k only if nobody wrote since; otherwise
 * read again and retry (with jitter). So a limit of 10 lets exactly 10 through however many
 * processes share the KV.
 *
 * Made cheap by batching, never by approximation. Within a process, requests that arrive while
 * commits are in flight go together in the next: all waiting requests of one counter in one step,
 * and the counters of up to `maxKeysPerCommit` clients in one atomic commit (a local KV commit
 * costs about the same for 1 key as for 50). The last committed value and versionstamp of each counter
 * are remembered, so the next commit checks against them without reading first (a write by
 * another process fails the check, and the counter is read again); a counter never seen is
 * assumed absent the same way; and a counter known to be at its limit refuses at once, since a
 * window's count only grows.
 */
import type { Clock } from "./clock.ts";
import type { Client } from "./client.ts";
import type { PolicyName, RatePolicy } from "./config.ts";
import { LimitError } from "./errors.ts";
import { keys } from "./keys.ts";
import { metrics } from "./metrics.ts";
import { isTransient } from "./kv_util.ts";

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
  id: string;
  key: Deno.KvKey;
  limit: number;
  expireIn: number;
  waiting: Waiter[];
}

/** What this process last knew of a counter: its count and versionstamp (null: absent). */
interface Known {
  count: number;
  versionstamp: string | null;
}

/** How long admission keeps retrying a contended or locked counter before giving up with 503. */
const DEADLINE_MS = 5_000;
/** Counters remembered per process (each a few dozen bytes); the oldest are forgotten first. */
const KNOWN_MAX = 50_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The limit a client gets under a policy: the policy's, times the tier multiplier. */
export function effectiveLimit(policy: RatePolicy, client: Pick<Client, "multiplier">): number {
  return Math.floor(policy.limit * client.multiplier);
}

/** Fixed-window counters shared through KV; one per process (see `rateLimiterFor`). */
export class RateLimiter {
  readonly #pending = new Map<string, KeyQueue>();
  readonly #known = new Map<string, Known>();
  readonly #inFlight = new Set<string>();
  /** Recent share of guesses (unseen counter assumed absent) that the versionstamp check refuted. */
  #guessMisses = 0;
  #batchesSinceGuess = 0;
  #batchesInFlight = 0;

  constructor(
    private readonly kv: Deno.Kv,
    private readonly clock: Clock,
    private readonly policies: Record<PolicyName, RatePolicy>,
    /** Counters per atomic commit: at most 100 checks locally and on Deploy, 10 on a denokv server. */
    private readonly maxKeysPerCommit = 50,
    /** Batches committing at once; each holds distinct counters. */
    private readonly maxBatchesInFlight = 1,
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
  hit(policy: PolicyName, client: Client): Promise<RateDecision> {
    return this.begin(policy, client).decision;
  }

  /**
   * `hit`, plus `headroom`: false when this process already knows the client is at or near its
   * limit (its counter plus the requests waiting on it reach the limit). A caller may do a
   * read-only request's work while its admission commits only when `headroom` is true, so a
   * client over its limit never makes the server work.
   */
  begin(policy: PolicyName, client: Client): { headroom: boolean; decision: Promise<RateDecision> } {
    const { p, windowMs, window, resetSeconds } = this.#window(policy);
    const limit = effectiveLimit(p, client);
    const key = keys.rateWindow(policy, client.id, window);
    const id = JSON.stringify(key);
    const known = this.#known.get(id);
    const headroom = (known?.count ?? 0) + (this.#pending.get(id)?.waiting.length ?? 0) < limit;
    const decision = this.#admit(id, key, limit, windowMs + 60_000).then(({ admitted, after }) => {
      if (!admitted) metrics.rateLimited.inc({ policy });
      return {
        policy,
        allowed: admitted,
        limit,
        windowSeconds: p.windowSeconds,
        remaining: Math.max(0, limit - after),
        resetSeconds,
      };
    });
    return { headroom, decision };
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

  #admit(
    id: string,
    key: Deno.KvKey,
    limit: number,
    expireIn: number,
  ): Promise<{ admitted: boolean; after: number }> {
    const known = this.#known.get(id);
    // counts only grow within a window: a counter known to be full stays full
    if (known && known.count >= limit) return Promise.resolve({ admitted: false, after: known.count });
    return new Promise((resolve, reject) => {
      let queue = this.#pending.get(id);
      if (!queue) {
        queue = { id, key, limit, expireIn, waiting: [] };
        this.#pending.set(id, queue);
      }
      queue.waiting.push({ resolve, reject });
      this.#flush();
    });
  }

  /**
   * Starts batches while requests wait, up to `maxBatchesInFlight` at once. A counter is in at
   * most one batch at a time, so this process never conflicts with itself.
   */
  #flush(): void {
    while (this.#batchesInFlight < this.maxBatchesInFlight && this.#pending.size) {
      const batch: KeyQueue[] = [];
      for (const [id, queue] of this.#pending) {
        if (this.#inFlight.has(id)) continue;
        this.#pending.delete(id);
        this.#inFlight.add(id);
        batch.push(queue);
        if (batch.length >= this.maxKeysPerCommit) break;
      }
      if (!batch.length) return;
      this.#batchesInFlight++;
      this.#commitBatch(batch)
        .catch((e) => {
          for (const q of batch) for (const w of q.waiting) w.reject(e);
        })
        .finally(() => {
          this.#batchesInFlight--;
          for (const q of batch) this.#inFlight.delete(q.id);
          this.#flush();
        });
    }
  }

  /**
   * Whether to guess that unseen counters are absent: yes while guesses mostly hold; when they do
   * not (instances share the same clients, so another one often wrote first) read first, but guess
   * again now and then to notice when that changes.
   */
  #guessesHold(): boolean {
    return this.#guessMisses < 0.2 || ++this.#batchesSinceGuess % 16 === 0;
  }

  #remember(id: string, known: Known): void {
    this.#known.delete(id);
    this.#known.set(id, known);
    if (this.#known.size > KNOWN_MAX) this.#known.delete(this.#known.keys().next().value!);
  }

  /** Reads the counters this process knows nothing about (getMany takes 10 keys at a time). */
  async #readUnknown(batch: KeyQueue[]): Promise<void> {
    const unknown = batch.filter((q) => !this.#known.has(q.id));
    const chunks = [];
    for (let i = 0; i < unknown.length; i += 10) chunks.push(unknown.slice(i, i + 10));
    await Promise.all(chunks.map(async (chunk) => {
      const entries = await this.kv.getMany<number[]>(chunk.map((q) => q.key));
      entries.forEach((e, i) =>
        this.#remember(chunk[i].id, { count: (e.value as number | null) ?? 0, versionstamp: e.versionstamp })
      );
    }));
  }

  /**
   * One atomic commit admitting what it can for every counter in the batch. If another process
   * wrote one of them meanwhile, they are read again; a batch that keeps conflicting is split so
   * one hot counter cannot hold up the others.
   */
  async #commitBatch(batch: KeyQueue[]): Promise<void> {
    const deadline = Date.now() + DEADLINE_MS;
    for (let attempt = 0;; attempt++) {
      const start = performance.now();
      let conflict = false;
      // A counter this process has never seen usually does not exist yet (a new client, or a new
      // window): assume so and let the versionstamp check catch the exceptions, saving a read.
      const guessing = attempt === 0 && this.#guessesHold() && batch.some((q) => !this.#known.has(q.id));
      try {
        if (!guessing) await this.#readUnknown(batch);
        const plan = batch.map((q) => {
          const known = this.#known.get(q.id) ?? { count: 0, versionstamp: null };
          return { q, known, admitted: Math.max(0, Math.min(q.waiting.length, q.limit - known.count)) };
        });
        const writes = plan.filter((x) => x.admitted > 0);
        let versionstamp: string | null = null;
        if (writes.length) {
          const atomic = this.kv.atomic();
          for (const { q, known, admitted } of writes) {
            atomic.check({ key: q.key, versionstamp: known.versionstamp })
              .set(q.key, known.count + admitted, { expireIn: q.expireIn });
          }
          const result = await atomic.commit();
          if (!result.ok) conflict = true;
          else versionstamp = result.versionstamp;
          if (guessing) this.#guessMisses = this.#guessMisses * 0.9 + (conflict ? 0.1 : 0);
        }
        if (!conflict) {
          for (const { q, known, admitted } of plan) {
            if (admitted > 0) this.#remember(q.id, { count: known.count + admitted, versionstamp });
            q.waiting.forEach((w, i) =>
              w.resolve(
                i < admitted
                  ? { admitted: true, after: known.count + i + 1 }
                  : { admitted: false, after: known.count + admitted },
              )
            );
          }
          return;
        }
        for (const q of batch) this.#known.delete(q.id);
      } catch (e) {
        if (!isTransient(e)) throw e;
      } finally {
        metrics.kvLatency.observe({ op: "rate_limit" }, (performance.now() - start) / 1000);
      }
      if (conflict && batch.length > 1 && attempt >= 1) {
        const results = await Promise.allSettled(batch.map((q) => this.#commitBatch([q])));
        results.forEach((r, i) => {
          if (r.status === "rejected") { for (const w of batch[i].waiting) w.reject(r.reason); }
        });
        return;
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
  deps: {
    kv: Deno.Kv;
    clock: Clock;
    config: { kvPath?: string; rateLimits: Record<PolicyName, RatePolicy> };
  },
): RateLimiter {
  let limiter = limiters.get(deps);
  if (!limiter) {
    // A local KV file pays an fsync per commit and runs one commit at a time: fewer, larger
    // batches. Remote KV (Deploy, a denokv server) overlaps commits; denokv allows 10 checks.
    const path = deps.config.kvPath;
    const local = path !== undefined && !path.includes("://");
    const denokv = path?.includes("://") ?? false;
    limiter = new RateLimiter(deps.kv, deps.clock, deps.config.rateLimits, denokv ? 10 : 50, local ? 1 : 4);
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
