/**
 * The global model budget, held in KV across instances: a cap on calls in flight (slots with a
 * lease, renewed while held) and a tokens-per-minute budget (a counter per minute window). Work
 * that does not fit waits — in the job queue for artifacts — rather than failing.
 */
import type { Clock } from "../clock.ts";
import { keys } from "../keys.ts";
import { commitWithRetry } from "../kv_util.ts";

export interface BudgetOptions {
  maxInFlight: number;
  tokensPerMinute: number;
  /** Longest a slot is held if its holder dies without releasing it (a live holder renews it). */
  slotLeaseMs: number;
}

export interface BudgetGrant {
  release(actualTokens?: number): Promise<void>;
}

/** Why a call must wait, and for how long. */
export interface BudgetWait {
  waitMs: number;
  reason: "calls_in_flight" | "tokens_per_minute";
}

export class ModelBudget {
  constructor(
    private readonly kv: Deno.Kv,
    private readonly clock: Clock,
    private readonly options: BudgetOptions,
  ) {}

  /** Takes a slot and reserves `estimatedTokens` in this minute's window, or says how long to wait. */
  async tryAcquire(estimatedTokens: number): Promise<BudgetGrant | BudgetWait> {
    const minute = Math.floor(this.clock.now() / 60_000);
    // a grant of no tokens (speech) has nothing to reserve in the window
    if (estimatedTokens > 0 && !(await this.#reserveTokens(minute, estimatedTokens))) {
      return { waitMs: (minute + 1) * 60_000 - this.clock.now() + 50, reason: "tokens_per_minute" };
    }
    const slot = await this.#takeSlot();
    if (slot === null) {
      if (estimatedTokens > 0) await this.#reserveTokens(minute, -estimatedTokens);
      return { waitMs: 500 + Math.random() * 1500, reason: "calls_in_flight" };
    }
    const hold = new SlotHold(this.kv, this.clock, slot, this.options.slotLeaseMs);
    let released = false;
    return {
      release: async (actualTokens?: number) => {
        if (released) return;
        released = true;
        await hold.release();
        if (actualTokens !== undefined && actualTokens !== estimatedTokens) {
          await this.#reserveTokens(minute, actualTokens - estimatedTokens, true);
        }
      },
    };
  }

  /** Number of slots held now (for metrics and health). */
  async inFlight(): Promise<number> {
    let n = 0;
    const now = this.clock.now();
    for await (const e of this.kv.list<SlotValue>({ prefix: keys.llmSlots() })) {
      if (e.value.until > now) n++;
    }
    return n;
  }

  async #reserveTokens(minute: number, tokens: number, force = false): Promise<boolean> {
    const key = keys.llmTokensWindow(minute);
    for (let i = 0; i < 20; i++) {
      const entry = await this.kv.get<number>(key);
      const used = entry.value ?? 0;
      if (!force && tokens > 0 && used > 0 && used + tokens > this.options.tokensPerMinute) return false;
      const res = await commitWithRetry(() =>
        this.kv.atomic().check(entry).set(key, Math.max(0, used + tokens), { expireIn: 120_000 }).commit()
      );
      if (res.ok) return true;
    }
    return false;
  }

  async #takeSlot(): Promise<Deno.AtomicCheck | null> {
    const now = this.clock.now();
    for (let first = 0; first < this.options.maxInFlight; first += 10) {
      const slotKeys = [];
      for (let i = first; i < Math.min(this.options.maxInFlight, first + 10); i++) {
        slotKeys.push(keys.llmSlot(i));
      }
      const entries = await this.kv.getMany<SlotValue[]>(slotKeys);
      for (const entry of entries) {
        if (entry.value && entry.value.until > now) continue;
        const held = await leaseSlot(this.kv, entry, now, this.options.slotLeaseMs);
        if (held) return held;
      }
    }
    return null;
  }
}

interface SlotValue {
  until: number;
}

/** Sets the slot's lease to `now + leaseMs` if `check` still holds; returns the new check. */
async function leaseSlot(kv: Deno.Kv, check: Deno.AtomicCheck, now: number, leaseMs: number) {
  const value: SlotValue = { until: now + leaseMs };
  const res = await commitWithRetry(() =>
    kv.atomic().check(check).set(check.key, value, { expireIn: leaseMs }).commit()
  );
  return res.ok ? { key: check.key, versionstamp: res.versionstamp } : null;
}

/**
 * A taken slot: its lease is renewed while it is held, so a stream or a podcast's speech longer
 * than the lease keeps its place (a dead process stops renewing, and its slot lapses); every
 * write checks the slot's last versionstamp, so a holder whose lease lapsed and was taken by
 * another never renews or frees that other holder's slot.
 */
class SlotHold {
  #check: Deno.AtomicCheck;
  #renewing: Promise<void> = Promise.resolve();
  readonly #timer: ReturnType<typeof setInterval>;

  constructor(
    private readonly kv: Deno.Kv,
    private readonly clock: Clock,
    check: Deno.AtomicCheck,
    leaseMs: number,
  ) {
    this.#check = check;
    this.#timer = setInterval(() => {
      this.#renewing = this.#renewing.then(() => this.#renew(leaseMs));
    }, leaseMs / 3);
    Deno.unrefTimer(this.#timer);
  }

  async #renew(leaseMs: number): Promise<void> {
    try {
      const held = await leaseSlot(this.kv, this.#check, this.clock.now(), leaseMs);
      if (held) this.#check = held;
      else clearInterval(this.#timer);
    } catch {
      // KV busy or closing: the next tick tries again, well within the lease
    }
  }

  async release(): Promise<void> {
    clearInterval(this.#timer);
    await this.#renewing;
    await commitWithRetry(() => this.kv.atomic().check(this.#check).delete(this.#check.key).commit())
      .catch(() => {});
  }
}
