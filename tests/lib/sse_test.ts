import assert from "node:assert/strict";
import { type SseEvent, type SseEvents, sseResponse } from "../../lib/sse.ts";
import { parseSse } from "../helpers.ts";

const decoder = new TextDecoder();

/** A source with nothing to say until `say` is called; `returned` resolves when the stream lets it go. */
function silentSource() {
  let speak: (e: IteratorResult<SseEvent>) => void = () => {};
  let returned!: () => void;
  const done = new Promise<void>((r) => returned = r);
  const events: SseEvents = {
    next: () => new Promise((r) => speak = r),
    return: () => returned(),
  };
  return { events, returned: done, say: (e: SseEvent) => speak({ value: e, done: false }) };
}

/** The reader's next chunk as text; fails (instead of hanging) when nothing comes within 5 s. */
async function nextText(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  read = reader.read(),
): Promise<string> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("nothing sent within 5 s")), 5000);
  });
  try {
    return decoder.decode((await Promise.race([read, deadline])).value);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("sseResponse pings a waiting reader of a silent stream, and stops when the reader leaves", async () => {
  const source = silentSource();
  let closed = 0;
  const res = sseResponse(source.events, { heartbeatMs: 40, onClose: () => closed++ });
  const reader = res.body!.getReader();
  for (let i = 0; i < 3; i++) assert.equal(await nextText(reader), ": ping\n\n");
  // an event still comes through between pings, framed
  const next = reader.read();
  source.say({ id: 7, event: "delta", data: { text: "hi" } });
  assert.equal(await nextText(reader, next), 'id: 7\nevent: delta\ndata: {"text":"hi"}\n\n');
  await reader.cancel();
  await source.returned;
  assert.equal(closed, 1);
});

Deno.test("sseResponse ends a stream whose source fails with event: error, and logs the failure", async (t) => {
  const failures = {
    "a rejected promise": (): SseEvents => {
      let n = 0;
      return {
        next: () =>
          n++ === 0
            ? Promise.resolve({ value: { id: 1, event: "progress", data: {} }, done: false })
            : Promise.reject(new Error("kv closed")),
      };
    },
    "a throw": (): SseEvents => ({
      next: () => {
        throw new Error("kv closed");
      },
    }),
  };
  for (const [name, make] of Object.entries(failures)) {
    await t.step(name, async () => {
      const logged: unknown[] = [];
      let closed = 0;
      const res = sseResponse(make(), {
        log: { error: (_msg, fields) => logged.push(fields?.error) },
        onClose: () => closed++,
      });
      const events = parseSse(await res.text());
      const last = events.at(-1)!;
      assert.equal(last.event, "error");
      assert.equal((last.data as { code: string }).code, "internal");
      assert.ok(!JSON.stringify(events).includes("kv closed"), "the failure's message is not shown");
      assert.equal((logged[0] as Error).message, "kv closed");
      assert.equal(closed, 1);
    });
  }
});
