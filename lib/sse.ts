/**
 * Server-Sent Events as API.md defines them: `id:`, `event:`, one-line JSON `data:`, a `: ping`
 * heartbeat, and a pull-based body: the next event is produced only when the client has taken the
 * previous one, so a slow reader holds at most one event in memory and costs nothing while idle.
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

/**
 * A `text/event-stream` response fed by `events`. A heartbeat goes out when no event came for
 * `heartbeatMs`; cancelling (the client left) returns the iterator, which frees its resources.
 */
export function sseResponse(
  events: AsyncIterator<SseEvent>,
  options: { heartbeatMs?: number; headers?: HeadersInit; onClose?: () => void } = {},
): Response {
  const heartbeatMs = options.heartbeatMs ?? 15_000;
  let pending: Promise<IteratorResult<SseEvent>> | null = null;
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    options.onClose?.();
  };
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      pending ??= events.next();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const tick = new Promise<"tick">((r) => timer = setTimeout(() => r("tick"), heartbeatMs));
      try {
        const next = await Promise.race([pending, tick]);
        if (next === "tick") return controller.enqueue(PING);
        pending = null;
        if (next.done) {
          close();
          return controller.close();
        }
        controller.enqueue(formatEvent(next.value));
      } catch (e) {
        close();
        controller.error(e);
      } finally {
        clearTimeout(timer);
      }
    },
    async cancel() {
      close();
      await events.return?.();
    },
  }, { highWaterMark: 0 });
  return new Response(body, {
    headers: {
      "Content-Type": "text/event-stream; charset=utf-8",
      "Cache-Control": "no-cache, no-transform",
      "X-Accel-Buffering": "no",
      ...options.headers,
    },
  });
}
