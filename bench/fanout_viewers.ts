/// <reference lib="deno.worker" />
/**
 * A Worker thread that holds a share of the fan-out benchmark's viewers: raw HTTP/1.1 SSE
 * connections that record what arrives and when (absolute ms), parsed after the run.
 */
const encoder = new TextEncoder();
const END_OF_BODY = encoder.encode("0\r\n\r\n");
const now = () => performance.timeOrigin + performance.now();

interface Viewer {
  connectedAt: number;
  chunks: { at: number; bytes: Uint8Array }[];
  done: Promise<void>;
  close(): void;
}

function endsWithTerminator(bytes: Uint8Array): boolean {
  if (bytes.byteLength < END_OF_BODY.byteLength) return false;
  const tail = bytes.subarray(bytes.byteLength - END_OF_BODY.byteLength);
  return tail.every((b, i) => b === END_OF_BODY[i]);
}

async function openViewer(port: number, path: string): Promise<Viewer> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(
    encoder.encode(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`),
  );
  let closed = false;
  const viewer: Viewer = {
    connectedAt: now(),
    chunks: [],
    done: Promise.resolve(),
    close() {
      if (closed) return;
      closed = true;
      try {
        conn.close();
      } catch { /* already closed */ }
    },
  };
  viewer.done = (async () => {
    // one buffer per connection, reused for every read; only the bytes that arrived are kept
    const readBuffer = new Uint8Array(16 * 1024);
    while (!closed) {
      const n = await conn.read(readBuffer).catch(() => null);
      if (n === null) break;
      const bytes = readBuffer.slice(0, n);
      viewer.chunks.push({ at: now(), bytes });
      if (endsWithTerminator(bytes)) break;
    }
    viewer.close();
  })();
  return viewer;
}

/** Deltas (seq → arrival) and text of one viewer, from its raw chunks. */
function parse(v: Viewer): { received: [number, number][]; text: string } {
  const decoder = new TextDecoder();
  const received: [number, number][] = [];
  let text = "";
  let pending = "";
  const event = /id: (\d+)\nevent: (\w+)\ndata: (.*)\n\n/g;
  for (const chunk of v.chunks) {
    pending += decoder.decode(chunk.bytes, { stream: true });
    let m: RegExpExecArray | null;
    let consumed = 0;
    event.lastIndex = 0;
    while ((m = event.exec(pending))) {
      consumed = event.lastIndex;
      if (m[2] !== "delta") continue;
      received.push([Number(m[1]), chunk.at]);
      text += (JSON.parse(m[3]) as { text: string }).text;
    }
    pending = pending.slice(consumed);
  }
  return { received, text };
}

let viewers: Viewer[] = [];

self.onmessage = async (e: MessageEvent) => {
  const msg = e.data as { op: "open"; port: number; path: string; count: number } | {
    op: "finish";
    content: string;
  } | {
    op: "close";
  };
  if (msg.op === "open") {
    viewers = [];
    for (let i = 0; i < msg.count; i += 100) {
      const batch = Array.from(
        { length: Math.min(100, msg.count - i) },
        () => openViewer(msg.port, msg.path),
      );
      viewers.push(...await Promise.all(batch));
    }
    self.postMessage({ op: "opened" });
    await Promise.all(viewers.map((v) => v.done));
    self.postMessage({ op: "ended" });
  } else if (msg.op === "finish") {
    let identical = 0;
    const results = viewers.map((v) => {
      const { received, text } = parse(v);
      if (text === msg.content) identical++;
      return { connectedAt: v.connectedAt, received };
    });
    self.postMessage({ op: "results", identical, viewers: results });
  } else {
    for (const v of viewers) v.close();
    await Promise.all(viewers.map((v) => v.done));
    self.postMessage({ op: "closed" });
  }
};
