/**
 * Server-Sent Events as API.md defines them: `id:`, `event:`, one-line JSON `data:`, a `: ping`
 * heartbeat, and a pull-based body: the next event is produced only when the client has taken the
 * previous one, so a slow reader holds at most one event in memory and costs nothing while idle.
 * Heartbeats come from one ticker per process for all open streams, not a timer per stream.
 */
import type { Logger } from "./log.ts";

export interface SseEvent {
  event: string;
  data: unknown;
  id?: number | string;
}

const encoder = new TextEncoder();

/** One event, framed. JSON.stringify never emits raw newlines, so `data:` stays one line. */
export function formatEvent(e: SseEvent): Uint8Array {
  const id = e.id === undefined ? "" : `id: ${e.id}\n`;
  return encoder.encode(`${id}event: ${e.event}\ndata: ${JSON.stringify(e.data)}\n\n`);
}

const PING = encoder.encode(": ping\n\n");
/** A stream that sent nothing for this long gets a ping within half as long again (so every ≤ 15 s). */
const HEARTBEAT_MS = 10_000;

interface OpenStream {
  controller: ReadableStreamDefaultController<Uint8Array>;
  lastSent: number;
  /** A pull is under way: the reader asked for the next event and the source has not answered. */
  pulling: boolean;
  /** Ends the stream as if its source had ended. */
  end(): void;
}

/** The open streams of one heartbeat interval and the timer that pings them. */
interface Ticker {
  streams: Set<OpenStream>;
  timer: ReturnType<typeof setInterval>;
}

/** One ticker per heartbeat interval (in the app there is one: HEARTBEAT_MS) for all its streams. */
const tickers = new Map<number, Ticker>();

function tick(streams: Set<OpenStream>, heartbeatMs: number): void {
  const now = Date.now();
  for (const s of streams) {
    // Only a reader that is waiting, and took everything sent so far, is pinged: a stalled reader
    // is not fed more bytes.
    if (!s.pulling || now - s.lastSent < heartbeatMs || s.controller.desiredSize !== 0) continue;
    s.controller.enqueue(PING);
    s.lastSent = now;
  }
}

function track(s: OpenStream, heartbeatMs: number): void {
  let ticker = tickers.get(heartbeatMs);
  if (!ticker) {
    const streams = new Set<OpenStream>();
    ticker = { streams, timer: setInterval(() => tick(streams, heartbeatMs), heartbeatMs / 2) };
    tickers.set(heartbeatMs, ticker);
  }
  ticker.streams.add(s);
}

function untrack(s: OpenStream, heartbeatMs: number): void {
  const ticker = tickers.get(heartbeatMs);
  if (!ticker?.streams.delete(s) || ticker.streams.size > 0) return;
  clearInterval(ticker.timer);
  tickers.delete(heartbeatMs);
}

/** Ends every open stream of this process (at shutdown: their clients resume on another instance). */
export function endAllStreams(): number {
  const open = [...tickers.values()].flatMap((t) => [...t.streams]);
  for (const s of open) s.end();
  return open.length;
}

/** What runs when a stream made by sseResponse ends, fails or is cancelled, keyed by its body. */
const closeHooks = new WeakMap<ReadableStream, (() => void)[]>();

/**
 * Runs `hook` once the SSE response `res` (made by sseResponse) is over: it ended, failed, or the
 * client left. Returns false, and runs nothing, for any other response.
 */
export function onStreamClose(res: Response, hook: () => void): boolean {
  const hooks = res.body ? closeHooks.get(res.body) : undefined;
  hooks?.push(hook);
  return hooks !== undefined;
}

/**
 * What feeds an SSE response: events, or bytes already framed by formatEvent (shared by many
 * viewers). An async iterator, or one whose `next` answers at once when it has something ready,
 * which spares the promises of an async step for each of 10,000 viewers on every batch.
 */
export interface SseEvents {
  next(): IteratorResult<SseEvent | Uint8Array> | Promise<IteratorResult<SseEvent | Uint8Array>>;
  return?(value?: undefined): unknown;
}

/** Sent, and the stream closed, when its source fails (the failure is logged, not shown). */
const FAILED = formatEvent({
  event: "error",
  data: { code: "internal", message: "The stream failed; reconnect to go on." },
});

export interface SseOptions {
  headers?: HeadersInit;
  onClose?: () => void;
  /** Where a failing source is reported. */
  log?: Pick<Logger, "error">;
  /** How long a stream may be silent before it gets a `: ping` (tests shorten it). */
  heartbeatMs?: number;
}

/**
 * A `text/event-stream` response fed by `events`. Cancelling (the client left) returns the
 * iterator; a source that throws ends the stream with `event: error`.
 */
export function sseResponse(events: SseEvents, options: SseOptions = {}): Response {
  const heartbeatMs = options.heartbeatMs ?? HEARTBEAT_MS;
  let state: OpenStream | undefined;
  let closed = false;
  const hooks: (() => void)[] = options.onClose ? [options.onClose] : [];
  const close = () => {
    if (closed) return;
    closed = true;
    if (state) untrack(state, heartbeatMs);
    for (const hook of hooks) hook();
  };
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  // made once per stream, not per pull: 10,000 viewers pull several times a second
  const send = (next: IteratorResult<SseEvent | Uint8Array>) => {
    if (closed) return;
    state!.pulling = false;
    if (next.done) {
      close();
      return controller.close();
    }
    controller.enqueue(next.value instanceof Uint8Array ? next.value : formatEvent(next.value));
    state!.lastSent = Date.now();
  };
  const fail = (e: unknown) => {
    if (closed) return;
    options.log?.error("event stream failed", { error: e });
    controller.enqueue(FAILED);
    close();
    controller.close();
  };
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
      state = {
        controller,
        lastSent: Date.now(),
        pulling: false,
        end() {
          if (closed) return;
          close();
          controller.close();
          Promise.resolve(events.return?.()).catch(() => {});
        },
      };
      track(state, heartbeatMs);
    },
    pull() {
      state!.pulling = true;
      try {
        const next = events.next();
        if (next instanceof Promise) return next.then(send, fail);
        send(next);
      } catch (e) {
        fail(e);
      }
    },
    async cancel() {
      close();
      await events.return?.();
    },
  }, { highWaterMark: 0 });
  closeHooks.set(body, hooks);
  return new Response(body, {
    headers: {
      "Content-Type": "text/event-stream; charset=utf-8",
      "Cache-Control": "no-cache, no-transform",
      "X-Accel-Buffering": "no",
      ...options.headers,
    },
  });
}
