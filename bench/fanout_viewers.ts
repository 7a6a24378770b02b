/// <reference lib="deno.worker" />
/**
 * A Worker thread that holds a share of the fan-out benchmark's viewers: raw HTTP/1.1 SSE
 * connections that record what arrives and when (absolute ms), parsed after the run.
 */
const encoder = new TextEncoder();
const END_OF_BODY = encoder.encode("0\r\n\r\n");
const now = () => performance.timeOrigin + performance.now();

/**
 * What one viewer received: every byte in one growing buffer, and for each read where it ended and
 * when it arrived. No object per read, so 10,000 viewers' bookkeeping does not load this thread's
 * garbage collector (whose pauses would show up as delivery lag).
 */
interface Viewer {
  connectedAt: number;
  bytes: Uint8Array;
  length: number;
  readEnds: number[];
  readAts: number[];
  done: Promise<void>;
  close(): void;
}

function append(v: Viewer, data: Uint8Array): void {
  if (v.length + data.byteLength > v.bytes.byteLength) {
    const grown = new Uint8Array(Math.max(v.bytes.byteLength * 2, v.length + data.byteLength));
    grown.set(v.bytes.subarray(0, v.length));
    v.bytes = grown;
  }
  v.bytes.set(data, v.length);
  v.length += data.byteLength;
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
    bytes: new Uint8Array(4096),
    length: 0,
    readEnds: [],
    readAts: [],
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
      const at = now();
      const bytes = readBuffer.subarray(0, n);
      append(viewer, bytes);
      viewer.readEnds.push(viewer.length);
      viewer.readAts.push(at);
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
  let start = 0;
  for (let i = 0; i < v.readEnds.length; i++) {
    const at = v.readAts[i];
    pending += decoder.decode(v.bytes.subarray(start, v.readEnds[i]), { stream: true });
    start = v.readEnds[i];
    let m: RegExpExecArray | null;
    let consumed = 0;
    event.lastIndex = 0;
    while ((m = event.exec(pending))) {
      consumed = event.lastIndex;
      if (m[2] !== "delta") continue;
      received.push([Number(m[1]), at]);
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
