/**
 * Daily model-token quotas in Deno KV: one counter per client per UTC day and one for everybody.
 * Tokens are reserved (an estimate) before a model call and settled (the actual count) after.
 * A reservation is admitted while the counters are below their limits, with a check-and-set on
 * both, so concurrent reservations are serialised: the total can pass a limit only by the last
 * admitted reservation (and later by what settlement adds beyond the estimates).
 */
import type { Clock } from "./clock.ts";
import type { Client } from "./client.ts";
import { LimitError } from "./errors.ts";
import { newId } from "./ids.ts";
import { keys } from "./keys.ts";
import { metrics } from "./metrics.ts";
import { isTransient } from "./kv_util.ts";

const DAY_MS = 86_400_000;
/** Counters outlive their day a little so late settlements still find them. */
const COUNTER_TTL_MS = 2 * DAY_MS;
const DEADLINE_MS = 10_000;

/** A reservation to pass to `settleTokens`; plain data, so it can travel in a job payload. */
export interface TokenReservation {
  id: string;
  clientId: string;
  day: number;
  tokens: number;
}

/** What GET /api/usage shows of a client's quota. */
export interface QuotaUsage {
  tokensUsed: number;
  tokensLimit: number;
  resetsAt: string;
}

/** What quota accounting needs of a client (plain data, so it can travel in a job payload). */
export type QuotaClient = Pick<Client, "id" | "quota">;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function dayOf(now: number) {
  const day = Math.floor(now / DAY_MS);
  return { day, resetsAtMs: (day + 1) * DAY_MS };
}

/** 429 quota_exceeded, saying when the quota resets. */
export class QuotaExceededError extends LimitError {
  constructor(scope: "client" | "global", resetsAtMs: number, now: number) {
    super(
      429,
      "quota_exceeded",
      scope === "client"
        ? "Your daily model-token quota is used up. Finished artifacts can still be read."
        : "Today's model-token budget for the whole service is used up. Finished artifacts can still be read.",
      (resetsAtMs - now) / 1000,
      { scope, resetsAt: new Date(resetsAtMs).toISOString() },
    );
  }
}

/** Runs a check-and-set step until it commits; retries conflicts and a locked local KV with jitter. */
async function casLoop<T>(step: () => Promise<T | null>): Promise<T> {
  const deadline = Date.now() + DEADLINE_MS;
  for (let attempt = 0;; attempt++) {
    try {
      const done = await step();
      if (done !== null) return done;
    } catch (e) {
      if (!isTransient(e)) throw e;
    }
    if (Date.now() > deadline) {
      throw new LimitError(503, "overloaded", "The service is too busy to account for tokens; try again.", 1);
    }
    await sleep(Math.random() * Math.min(200, 2 * 2 ** Math.min(attempt, 7)));
  }
}

/**
 * Reserves `estimate` tokens for `client` today, before a model call. Throws QuotaExceededError
 * (429 quota_exceeded, with resetsAt) when the client's or the global daily quota is used up.
 */
export async function reserveTokens(
  kv: Deno.Kv,
  clock: Clock,
  client: QuotaClient,
  estimate: number,
): Promise<TokenReservation> {
  const tokens = Math.max(0, Math.ceil(estimate));
  const now = clock.now();
  const { day, resetsAtMs } = dayOf(now);
  const clientKey = keys.quotaClient(client.id, day);
  const globalKey = keys.quotaGlobal(day);
  const { dailyTokens, globalDailyTokens } = client.quota;
  await casLoop(async () => {
    const [mine, all] = await kv.getMany<[number, number]>([clientKey, globalKey]);
    if (dailyTokens > 0 && (mine.value ?? 0) >= dailyTokens) {
      metrics.refused.inc({ code: "quota_exceeded" });
      throw new QuotaExceededError("client", resetsAtMs, now);
    }
    if (globalDailyTokens > 0 && (all.value ?? 0) >= globalDailyTokens) {
      metrics.refused.inc({ code: "quota_exceeded" });
      throw new QuotaExceededError("global", resetsAtMs, now);
    }
    const result = await kv.atomic()
      .check(mine)
      .check(all)
      .set(clientKey, (mine.value ?? 0) + tokens, { expireIn: COUNTER_TTL_MS })
      .set(globalKey, (all.value ?? 0) + tokens, { expireIn: COUNTER_TTL_MS })
      .commit();
    return result.ok ? true : null;
  });
  return { id: newId(now), clientId: client.id, day, tokens };
}

/**
 * Replaces a reservation's estimate with the tokens actually used (0 when the call failed and
 * used nothing). Idempotent: settling the same reservation again changes nothing, so a retried
 * job cannot count twice.
 */
export async function settleTokens(
  kv: Deno.Kv,
  reservation: TokenReservation,
  actualTokens: number,
): Promise<void> {
  const delta = Math.max(0, Math.ceil(actualTokens)) - reservation.tokens;
  const settledKey = keys.quotaSettled(reservation.id);
  const clientKey = keys.quotaClient(reservation.clientId, reservation.day);
  const globalKey = keys.quotaGlobal(reservation.day);
  await casLoop(async () => {
    const [settled, mine, all] = await kv.getMany<[true, number, number]>([settledKey, clientKey, globalKey]);
    if (settled.value) return true;
    const atomic = kv.atomic().check(settled).check(mine).check(all)
      .set(settledKey, true, { expireIn: COUNTER_TTL_MS });
    if (delta !== 0) {
      atomic
        .set(clientKey, Math.max(0, (mine.value ?? 0) + delta), { expireIn: COUNTER_TTL_MS })
        .set(globalKey, Math.max(0, (all.value ?? 0) + delta), { expireIn: COUNTER_TTL_MS });
    }
    return (await atomic.commit()).ok ? true : null;
  });
}

/**
 * Throws QuotaExceededError when the client's or the global quota is already used up, without
 * reserving anything: for requests that may join work someone else pays for.
 */
export async function assertQuotaLeft(kv: Deno.Kv, clock: Clock, client: QuotaClient): Promise<void> {
  const now = clock.now();
  const { day, resetsAtMs } = dayOf(now);
  const [mine, all] = await kv.getMany<[number, number]>([
    keys.quotaClient(client.id, day),
    keys.quotaGlobal(day),
  ]);
  const { dailyTokens, globalDailyTokens } = client.quota;
  if (dailyTokens > 0 && (mine.value ?? 0) >= dailyTokens) {
    throw new QuotaExceededError("client", resetsAtMs, now);
  }
  if (globalDailyTokens > 0 && (all.value ?? 0) >= globalDailyTokens) {
    throw new QuotaExceededError("global", resetsAtMs, now);
  }
}

/** The client's tokens used today, its limit (0 = none) and when the day resets. */
export async function quotaUsage(kv: Deno.Kv, clock: Clock, client: QuotaClient): Promise<QuotaUsage> {
  const { day, resetsAtMs } = dayOf(clock.now());
  const used = (await kv.get<number>(keys.quotaClient(client.id, day))).value ?? 0;
  return {
    tokensUsed: used,
    tokensLimit: client.quota.dailyTokens,
    resetsAt: new Date(resetsAtMs).toISOString(),
  };
}
