/**
 * A circuit breaker shared through KV, so every instance sees the same state: it opens after
 * `threshold` consecutive failures, refuses calls for `cooldownMs`, then lets one probe through
 * (half open); the probe's success closes it, its failure opens it again.
 */
import type { Clock } from "../clock.ts";
import { LimitError } from "../errors.ts";
import { keys } from "../keys.ts";
import { commitWithRetry } from "../kv_util.ts";

export type CircuitState = "closed" | "open" | "half_open";

interface CircuitRecord {
  state: CircuitState;
  failures: number;
  openedAt: number;
  probeUntil: number;
}

const CLOSED: CircuitRecord = { state: "closed", failures: 0, openedAt: 0, probeUntil: 0 };

export interface CircuitOptions {
  threshold: number;
  cooldownMs: number;
  /** How long a probe may take before another caller may probe. */
  probeMs: number;
}

/** 503 llm_unavailable with Retry-After: the model is failing and the circuit is open. */
export class LlmUnavailableError extends LimitError {
  constructor(retryAfterSeconds: number) {
    super(
      503,
      "llm_unavailable",
      "The language model is failing right now; try again shortly.",
      retryAfterSeconds,
    );
  }
}

export class Circuit {
  constructor(
    private readonly kv: Deno.Kv,
    private readonly clock: Clock,
    private readonly provider: string,
    private readonly options: CircuitOptions,
  ) {}

  async #read(): Promise<Deno.KvEntryMaybe<CircuitRecord>> {
    return await this.kv.get<CircuitRecord>(keys.circuit(this.provider));
  }

  /** The state as callers see it now (an open circuit past its cool-down reads as half open). */
  async state(): Promise<CircuitState> {
    const r = (await this.#read()).value ?? CLOSED;
    if (r.state === "open" && this.clock.now() >= r.openedAt + this.options.cooldownMs) return "half_open";
    return r.state;
  }

  /** Seconds until a call may be tried, or 0 when calls may go ahead. */
  async retryAfterSeconds(): Promise<number> {
    const r = (await this.#read()).value ?? CLOSED;
    if (r.state === "closed") return 0;
    const now = this.clock.now();
    if (r.state === "open") {
      return Math.max(0, Math.ceil((r.openedAt + this.options.cooldownMs - now) / 1000));
    }
    return r.probeUntil > now ? Math.ceil((r.probeUntil - now) / 1000) : 0;
  }

  /** Lets a call through, or throws LlmUnavailableError; past the cool-down exactly one caller probes. */
  async admit(): Promise<void> {
    for (let i = 0; i < 5; i++) {
      const entry = await this.#read();
      const r = entry.value ?? CLOSED;
      const now = this.clock.now();
      if (r.state === "closed") return;
      const reopenAt = r.state === "open" ? r.openedAt + this.options.cooldownMs : r.probeUntil;
      if (now < reopenAt) throw new LlmUnavailableError((reopenAt - now) / 1000);
      const probing: CircuitRecord = { ...r, state: "half_open", probeUntil: now + this.options.probeMs };
      const res = await commitWithRetry(() =>
        this.kv.atomic().check(entry).set(keys.circuit(this.provider), probing).commit()
      );
      if (res.ok) return;
    }
    throw new LlmUnavailableError(1);
  }

  /** Records a successful call: closes the circuit. */
  async success(): Promise<void> {
    const entry = await this.#read();
    if (!entry.value || (entry.value.state === "closed" && entry.value.failures === 0)) return;
    await commitWithRetry(() =>
      this.kv.atomic().check(entry).set(keys.circuit(this.provider), CLOSED).commit()
    );
  }

  /** Records a failed call: opens the circuit at the threshold, or at once when a probe failed. */
  async failure(): Promise<void> {
    for (let i = 0; i < 5; i++) {
      const entry = await this.#read();
      const r = entry.value ?? CLOSED;
      const failures = r.failures + 1;
      const open = r.state === "half_open" || failures >= this.options.threshold;
      const next: CircuitRecord = open
        ? { state: "open", failures, openedAt: this.clock.now(), probeUntil: 0 }
        : { ...r, failures };
      const res = await commitWithRetry(() =>
        this.kv.atomic().check(entry).set(keys.circuit(this.provider), next).commit()
      );
      if (res.ok) return;
    }
  }
}
