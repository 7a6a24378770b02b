/**
 * Pacing for long loops on the event loop's thread. A loop whose awaits are already resolved (an
 * ingest reading entries from a buffered chunk) never lets I/O in: other requests wait until it
 * pauses. While a 100 MB archive was ingested, `/health` answered in p50 105–148 ms and p99
 * 323–445 ms when the ingest paused every 1,000 entries; pausing every 25 ms, in 33 ms and 99–121
 * ms (`deno task bench ingest --probe-health`, docs/PERFORMANCE.md). A pause waits for a timer:
 * `setImmediate` and a `MessageChannel` come back before any I/O is polled, and a timer idles 1–2
 * ms, so the ingest took 0–5 % longer, and much shorter slices would cost more.
 */

/** How long a loop runs before it lets other work run, in ms. */
export const SLICE_MS = 25;

/**
 * A function to await between the steps of a long loop: once {@link SLICE_MS} have passed since
 * the last pause, it pauses for a timer (other work runs meanwhile); otherwise it returns nothing.
 */
export function eventLoopPacer(now: () => number = () => performance.now()): () => Promise<void> | undefined {
  let last = now();
  return () => {
    if (now() - last < SLICE_MS) return;
    return new Promise((resolve) =>
      setTimeout(() => {
        last = now();
        resolve();
      }, 0)
    );
  };
}
