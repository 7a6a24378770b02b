/**
 * The process's requests while it shuts down. Deno's `server.shutdown()` cuts off request bodies
 * still arriving, so an upload in flight would be lost: at SIGTERM the process first drains —
 * new requests get 503 (the load balancer sends them elsewhere), open event streams are ended
 * (their clients resume on another instance), and requests already running are waited for, up
 * to a deadline — and only then shuts the server down.
 */
import { LimitError } from "./errors.ts";

export class Drain {
  #draining = false;
  #inFlight = 0;
  #idle: (() => void)[] = [];

  get draining(): boolean {
    return this.#draining;
  }

  /** Requests running now (their handlers, not the bodies they stream out afterwards). */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Runs one request's handler, counted; 503 once the process drains. */
  async track<T>(handle: () => Promise<T>): Promise<T> {
    if (this.#draining) throw restarting();
    this.#inFlight++;
    try {
      return await handle();
    } finally {
      if (--this.#inFlight === 0) { for (const resolve of this.#idle.splice(0)) resolve(); }
    }
  }

  /** Starts draining; resolves true when no request is running, false at the deadline. */
  async begin(deadlineMs: number): Promise<boolean> {
    this.#draining = true;
    if (this.#inFlight === 0) return true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const idle = new Promise<true>((resolve) => this.#idle.push(() => resolve(true)));
    const late = new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), deadlineMs));
    const drained = await Promise.race([idle, late]);
    clearTimeout(timer);
    return drained;
  }
}

/** The 503 a draining process answers with (and the one an upload it cut off gets). */
export function restarting(): LimitError {
  return new LimitError(503, "overloaded", "This server is restarting; try again in a moment.", 1);
}
