import assert from "node:assert/strict";
import { postJson, readSse, waitFor } from "../helpers.ts";
import { startModelWorld } from "../model_fixtures.ts";
import { boundHistory } from "../../routes/chat.ts";

type Source = { path: string; startLine: number; endLine: number; score: number | null };

Deno.test("chat: sources come first and cite real files and lines, then the streamed answer", async () => {
  const world = await startModelWorld({ tokens: 25 });
  try {
    const res = await world.app.fetch(
      `/api/repos/${world.repoId}/chat`,
      postJson({ messages: [{ role: "user", content: "Where is parseWidget defined?" }] }),
    );
    assert.equal(res.headers.get("content-type"), "text/event-stream; charset=utf-8");
    const events = await readSse(res);
    assert.equal(events[0].event, "sources");
    const sources = events[0].data as Source[];
    assert.ok(sources.length > 0);
    for (const s of sources) {
      const file = await world.app.fetch(`/api/repos/${world.repoId}/files/${s.path}`);
      assert.equal(file.status, 200, s.path);
      const lines = (await file.text()).split("\n");
      assert.ok(s.startLine >= 1 && s.endLine <= lines.length && s.startLine <= s.endLine);
    }
    const cited = sources.find((s) => s.path === "src/parser.js")!;
    assert.ok(cited, "the defining file is cited");
    const text = await (await world.app.fetch(`/api/repos/${world.repoId}/files/${cited.path}`)).text();
    assert.ok(text.split("\n").slice(cited.startLine - 1, cited.endLine).join("\n").includes("parseWidget"));
    const deltas = events.filter((e) => e.event === "delta");
    assert.equal(deltas.length, 25);
    assert.equal(events[events.length - 1].event, "done");
    assert.deepEqual(
      (events[events.length - 1].data as { usage: { outputTokens: number } }).usage.outputTokens,
      25,
    );
    const prompt = JSON.stringify(world.llm.calls.log[0].messages);
    assert.ok(prompt.includes("[src/parser.js:"), "the passages reach the model with their citations");
  } finally {
    await world.close();
  }
});

Deno.test("chat: the selection is always in context and listed first", async () => {
  const world = await startModelWorld({ tokens: 5 });
  try {
    const res = await world.app.fetch(
      `/api/repos/${world.repoId}/chat`,
      postJson({
        messages: [{ role: "user", content: "What does this do?" }],
        selection: { path: "src/index.js", startLine: 1, endLine: 2 },
      }),
    );
    const events = await readSse(res);
    assert.deepEqual((events[0].data as Source[])[0], {
      path: "src/index.js",
      startLine: 1,
      endLine: 2,
      score: null,
    });
    assert.ok(JSON.stringify(world.llm.calls.log[0].messages).includes("console.log(parseWidget"));
    const missing = await world.app.json<{ error: { code: string } }>(
      `/api/repos/${world.repoId}/chat`,
      postJson({
        messages: [{ role: "user", content: "x" }],
        selection: { path: "nope.js", startLine: 1, endLine: 2 },
      }),
    );
    assert.equal(missing.status, 404);
  } finally {
    await world.close();
  }
});

Deno.test("chat: closing the connection cancels the upstream model call", async () => {
  const world = await startModelWorld({ tokens: 2000, delayMs: 20 });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const url = new URL(req.url);
    return world.app.fetch(url.pathname + url.search, {
      method: req.method,
      headers: req.headers,
      body: req.body,
      signal: req.signal,
    });
  });
  try {
    const controller = new AbortController();
    const res = await fetch(`http://127.0.0.1:${server.addr.port}/api/repos/${world.repoId}/chat`, {
      ...postJson({ messages: [{ role: "user", content: "Tell me everything." }] }),
      signal: controller.signal,
    });
    const reader = res.body!.getReader();
    await reader.read();
    await reader.read();
    const closedAt = Date.now();
    controller.abort();
    await waitFor(() => world.llm.calls.aborted === 1, 2000, "the fake to see the abort");
    assert.ok(Date.now() - closedAt < 1000, "aborted within 1 s");
    assert.ok(world.llm.calls.chat === 1);
  } finally {
    await server.shutdown();
    await world.close();
  }
});

Deno.test("chat: bad requests get API.md errors and never reach the model", async () => {
  const world = await startModelWorld();
  try {
    const bad = [
      {},
      { messages: [] },
      { messages: [{ role: "system", content: "x" }] },
      { messages: [{ role: "assistant", content: "x" }] },
      { messages: [{ role: "user", content: "" }] },
      { messages: [{ role: "user", content: "x" }], selection: { path: "a", startLine: 5, endLine: 1 } },
      // under 1,024 characters but over 1,024 bytes: too long for a stored path
      {
        messages: [{ role: "user", content: "x" }],
        selection: { path: "日".repeat(700), startLine: 1, endLine: 2 },
      },
    ];
    for (const body of bad) {
      const res = await world.app.json<{ error: { code: string } }>(
        `/api/repos/${world.repoId}/chat`,
        postJson(body),
      );
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(res.body.error.code, "invalid_request");
    }
    assert.equal(world.llm.calls.chat, 0);
  } finally {
    await world.close();
  }
});

Deno.test("boundHistory keeps the latest messages within the token budget, and always the last", () => {
  const long = "word ".repeat(3000);
  const messages = [
    { role: "user" as const, content: long },
    { role: "assistant" as const, content: "short answer" },
    { role: "user" as const, content: "follow-up question" },
  ];
  assert.deepEqual(boundHistory(messages, 100).map((m) => m.content), ["short answer", "follow-up question"]);
  assert.deepEqual(boundHistory([{ role: "user", content: long }], 10).length, 1);
});
