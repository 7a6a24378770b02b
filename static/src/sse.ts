/// <reference lib="dom" />
/** Server-Sent Events: a parser for fetch() bodies (chat is a POST) and a resuming EventSource. */

export interface SseMessage {
  event: string;
  data: string;
  id?: string;
}

/** Parses one event block; comments (`: ping`) and blocks without data give null. */
export function parseBlock(block: string): SseMessage | null {
  let event = "message";
  let id: string | undefined;
  const data: string[] = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
    else if (field === "id") id = value;
  }
  return data.length ? { event, data: data.join("\n"), id } : null;
}

/** Yields the events of a `text/event-stream` body as they arrive. */
export async function* readSse(body: ReadableStream<Uint8Array>): AsyncGenerator<SseMessage> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      // Normalise CRLF / CR only where the whole pair has arrived.
      buffer = buffer.replace(/\r\n|\r(?=.)/g, "\n");
      let end: number;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const message = parseBlock(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (message) yield message;
      }
    }
    const last = parseBlock(buffer.replace(/\r/g, ""));
    if (last) yield last;
  } finally {
    reader.releaseLock();
  }
}

export interface StreamHandlers {
  /** A new piece of text with its sequence number. */
  onDelta(text: string, seq: number): void;
  /** The stream ended well; `data` is the `done` event's JSON. */
  onDone(data: unknown): void;
  /** The stream ended with `event: error` (or could not be reopened). */
  onError(error: { code: string; message: string }): void;
  /** Connection lost / back, for a status line. */
  onConnection?(state: "reconnecting" | "open"): void;
}

/**
 * An artifact stream: EventSource reconnects by itself and sends Last-Event-ID; when the browser
 * gives up (e.g. the server answered 503 on reconnect) we reopen with `?from=` after a pause.
 * Every delta carries its sequence number, and anything at or below the last one seen is dropped,
 * so a replay after a reconnect never duplicates text.
 */
export class ResumableStream {
  lastSeq = 0;
  private source?: EventSource;
  private closed = false;
  private retryTimer?: ReturnType<typeof setTimeout>;
  private failures = 0;

  constructor(private readonly url: string, private readonly handlers: StreamHandlers) {}

  /** Opens the stream (again), resuming after the last sequence seen. */
  open(): void {
    if (this.closed) return;
    const url = this.lastSeq > 0 ? `${this.url}?from=${this.lastSeq}` : this.url;
    const source = new EventSource(url);
    this.source = source;
    source.addEventListener("open", () => {
      this.failures = 0;
      this.handlers.onConnection?.("open");
    });
    source.addEventListener("delta", (e) => {
      const seq = Number((e as MessageEvent).lastEventId);
      if (Number.isFinite(seq) && seq > 0) {
        if (seq <= this.lastSeq) return;
        this.lastSeq = seq;
      }
      let text = "";
      try {
        text = String(JSON.parse((e as MessageEvent).data).text ?? "");
      } catch {
        return;
      }
      this.handlers.onDelta(text, this.lastSeq);
    });
    source.addEventListener("done", (e) => {
      this.close();
      let data: unknown = null;
      try {
        data = JSON.parse((e as MessageEvent).data);
      } catch {
        // a done without a body is still done
      }
      this.handlers.onDone(data);
    });
    source.addEventListener("error", (e) => {
      // A server-sent `event: error` is a MessageEvent with data; a lost connection is a plain Event.
      if (e instanceof MessageEvent && typeof e.data === "string" && e.data) {
        this.close();
        let error = { code: "stream_error", message: "The text could not be generated." };
        try {
          const parsed = JSON.parse(e.data);
          if (parsed?.message) {
            error = { code: String(parsed.code ?? "stream_error"), message: parsed.message };
          }
        } catch {
          // keep the generic sentence
        }
        this.handlers.onError(error);
        return;
      }
      if (this.closed) return;
      this.handlers.onConnection?.("reconnecting");
      if (source.readyState === EventSource.CLOSED) {
        this.failures++;
        if (this.failures > 8) {
          this.close();
          this.handlers.onError({
            code: "stream_lost",
            message: "The connection to the server keeps dropping. Reload the page to try again.",
          });
          return;
        }
        const delay = Math.min(30_000, 1000 * 2 ** (this.failures - 1)) * (0.5 + Math.random() / 2);
        this.retryTimer = setTimeout(() => this.open(), delay);
      }
    });
  }

  /** Stops for good. */
  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.source?.close();
  }
}
