/**
 * Server-Sent Events as API.md defines them: `id:`, `event:`, one-line JSON `data:`, a `: ping`
 * heartbeat, and a pull-based body: the next event is produced only when the client has taken the
 * previous one, so a slow reader holds at most one event in memory and costs nothing while idle.
 * Heartbeats come from one ticker per process for all open streams, not a timer per stream.
 */
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
/** A stream that sent nothing for this long gets a ping at the next tick (so every ≤ 15 s). */
export const HEARTBEAT_MS = 10_000;
const TICK_MS = 5_000;

interface OpenStream {
  controller: ReadableStreamDefaultController<Uint8Array>;
  lastSent: number;
}

const openStreams = new Set<OpenStream>();
let ticker: ReturnType<typeof setInterval> | undefined;

function tick(): void {
  const now = Date.now();
  for (const s of openStreams) {
    // Only a stream whose reader is waiting gets a ping; a stalled reader is not fed more bytes.
    if (now - s.lastSent >= HEARTBEAT_MS && (s.controller.desiredSize ?? 0) > 0) {
      s.controller.enqueue(PING);
      s.lastSent = now;
    }
  }
}

function track(s: OpenStream): void {
  openStreams.add(s);
  ticker ??= setInterval(tick, TICK_MS);
}

function untrack(s: OpenStream): void {
  openStreams.delete(s);
  if (openStreams.size === 0 && ticker !== undefined) {
    clearInterval(ticker);
    ticker = undefined;
  }
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

/** A `text/event-stream` response fed by `events`. Cancelling (the client left) returns the iterator. */
export function sseResponse(
  events: SseEvents,
  options: { headers?: HeadersInit; onClose?: () => void } = {},
): Response {
  let state: OpenStream | undefined;
  let closed = false;
  const hooks: (() => void)[] = options.onClose ? [options.onClose] : [];
  const close = () => {
    if (closed) return;
    closed = true;
    if (state) untrack(state);
    for (const hook of hooks) hook();
  };
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  // made once per stream, not per pull: 10,000 viewers pull several times a second
  const send = (next: IteratorResult<SseEvent | Uint8Array>) => {
    if (closed) return;
    if (next.done) {
      close();
      return controller.close();
    }
    controller.enqueue(next.value instanceof Uint8Array ? next.value : formatEvent(next.value));
    state!.lastSent = Date.now();
  };
  const fail = (e: unknown) => {
    close();
    controller.error(e);
  };
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
      state = { controller, lastSent: Date.now() };
      track(state);
    },
    pull() {
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
