import assert from "node:assert/strict";
import OpenAI from "openai";
import { type FakeOpenAI, fakeReplyText, startFakeOpenAI, type StartFakeOpenAIOptions } from "./openai.ts";

const MESSAGES = [
  { role: "system" as const, content: "You are a fake." },
  { role: "user" as const, content: "What does lib/jobs.ts do?" },
];
/** Deno.serve only reports dropped clients of requests this big through the response body. */
const BIG_MESSAGES = [{ role: "user" as const, content: "lib/jobs.ts ".repeat(200) }];

async function withFake(
  options: StartFakeOpenAIOptions,
  fn: (fake: FakeOpenAI, client: OpenAI) => Promise<void>,
): Promise<void> {
  const fake = await startFakeOpenAI(options);
  const apiKey = options.apiKey ?? "test-key";
  const client = new OpenAI({ baseURL: fake.baseUrl, apiKey, maxRetries: 0, logLevel: "off" });
  try {
    await fn(fake, client);
  } finally {
    await fake.close();
  }
}

/** Polls `condition` with short awaits until it holds or `timeoutMs` passes. */
async function waitFor(condition: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("waitFor: condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function streamText(client: OpenAI, messages = MESSAGES): Promise<string> {
  const stream = await client.chat.completions.create({ model: "fake-model", messages, stream: true });
  let text = "";
  for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
  return text;
}

async function complete(client: OpenAI, messages = MESSAGES) {
  return await client.chat.completions.create({ model: "fake-model", messages });
}

Deno.test("streaming with include_usage yields the deterministic text and usage", async () => {
  await withFake({ tokens: 12 }, async (fake, client) => {
    const stream = await client.chat.completions.create({
      model: "fake-model",
      messages: MESSAGES,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    const text = chunks.map((chunk) => chunk.choices[0]?.delta.content ?? "").join("");
    assert.equal(text, fakeReplyText(MESSAGES, 12));
    assert.match(text, /^Answer [0-9a-f]{8}: word1 word2 .* word10$/);
    assert.equal(chunks[0].choices[0].delta.role, "assistant");
    assert.equal(chunks.at(-2)?.choices[0].finish_reason, "stop");
    assert.deepEqual(chunks.at(-1)?.choices, []);
    assert.deepEqual(chunks.at(-1)?.usage, { prompt_tokens: 8, completion_tokens: 12, total_tokens: 20 });
    assert.equal(fake.calls.chat, 1);
    assert.deepEqual(fake.calls.log, [
      { path: "/v1/chat/completions", model: "fake-model", stream: true, messages: MESSAGES },
    ]);
  });
});

Deno.test("non-streaming returns the same text as streaming, with usage", async () => {
  await withFake({ tokens: 20 }, async (_fake, client) => {
    const completion = await complete(client);
    assert.equal(completion.object, "chat.completion");
    assert.equal(completion.choices[0].message.content, await streamText(client));
    assert.equal(completion.choices[0].finish_reason, "stop");
    assert.equal(completion.usage?.completion_tokens, 20);
    const other = await complete(client, [{ role: "user", content: "Something else" }]);
    assert.notEqual(other.choices[0].message.content, completion.choices[0].message.content);
  });
});

Deno.test("FAKE_REPLY lines are replied verbatim", async () => {
  await withFake({}, async (_fake, client) => {
    const reply = `<img src=x onerror="alert(1)"> see [lib/jobs.ts:12]`;
    const messages = [{ role: "user" as const, content: `Context...\nFAKE_REPLY: ${reply}\nQuestion?` }];
    assert.equal(await streamText(client, messages), reply);
    assert.equal((await complete(client, messages)).choices[0].message.content, reply);
  });
});

Deno.test("speech returns MP3 bytes sized by the input", async () => {
  await withFake({}, async (fake, client) => {
    const speak = async (input: string) => {
      const response = await client.audio.speech.create({ model: "tts-1", voice: "alloy", input });
      assert.equal(response.headers.get("content-type"), "audio/mpeg");
      return new Uint8Array(await response.arrayBuffer());
    };
    const short = await speak("Hello");
    const long = await speak("Hello, this is a much longer sentence.");
    assert.deepEqual([...short.subarray(0, 4)], [0xff, 0xfb, 0x10, 0xc4]);
    assert.ok(long.length > short.length);
    assert.deepEqual(short, await speak("Hello"));
    assert.equal(fake.calls.speech, 3);
  });
});

Deno.test("models lists the configured model", async () => {
  await withFake({ model: "my-model" }, async (_fake, client) => {
    const ids = [];
    for await (const model of client.models.list()) ids.push(model.id);
    assert.deepEqual(ids, ["my-model"]);
  });
});

Deno.test("a wrong API key gets a 401 in OpenAI's error shape", async () => {
  await withFake({ apiKey: "right" }, async (fake, client) => {
    const wrong = new OpenAI({ baseURL: fake.baseUrl, apiKey: "wrong", maxRetries: 0 });
    await assert.rejects(complete(wrong), (error) => {
      assert.ok(error instanceof OpenAI.AuthenticationError);
      assert.equal(error.code, "invalid_api_key");
      return true;
    });
    assert.equal((await complete(client)).object, "chat.completion");
  });
});

Deno.test("a queued 429 surfaces as RateLimitError with retry-after, then calls succeed", async () => {
  await withFake({ retryAfterSec: 7 }, async (fake, client) => {
    fake.setFaults(["429"]);
    await assert.rejects(complete(client), (error) => {
      assert.ok(error instanceof OpenAI.RateLimitError);
      assert.equal(error.status, 429);
      assert.equal(error.headers.get("retry-after"), "7");
      assert.equal(error.code, "rate_limit_exceeded");
      return true;
    });
    assert.equal((await complete(client)).object, "chat.completion");
    assert.equal(fake.calls.chat, 2);
  });
});

Deno.test("500 faults surface as APIError 500, via times and the fail option", async () => {
  await withFake({ faults: [{ mode: "500", times: 2 }] }, async (fake, client) => {
    const is500 = (error: unknown) => error instanceof OpenAI.InternalServerError && error.status === 500;
    await assert.rejects(complete(client), is500);
    await assert.rejects(streamText(client), is500);
    assert.equal((await complete(client)).object, "chat.completion");
    fake.setOptions({ fail: "500" });
    await assert.rejects(complete(client), is500);
    await assert.rejects(client.audio.speech.create({ model: "tts-1", voice: "alloy", input: "x" }), is500);
    fake.setOptions({ fail: undefined });
    assert.equal((await complete(client)).object, "chat.completion");
  });
});

Deno.test("hang + client abort: the client throws APIUserAbortError and the fake counts the abort", async () => {
  await withFake({ faults: ["hang"] }, async (fake, client) => {
    const controller = new AbortController();
    const request = client.chat.completions.create({ model: "fake-model", messages: BIG_MESSAGES }, {
      signal: controller.signal,
    });
    await waitFor(() => fake.calls.chat === 1);
    controller.abort();
    await assert.rejects(request, OpenAI.APIUserAbortError);
    await waitFor(() => fake.calls.aborted === 1);
  });
});

Deno.test("a hanging stream gets headers, then nothing until the client aborts", async () => {
  await withFake({ fail: "hang" }, async (fake, client) => {
    const controller = new AbortController();
    const stream = await client.chat.completions.create(
      { model: "fake-model", messages: BIG_MESSAGES, stream: true },
      { signal: controller.signal },
    );
    const iteration = Array.fromAsync(stream);
    controller.abort();
    assert.deepEqual(await iteration, []);
    await waitFor(() => fake.calls.aborted === 1);
  });
});

Deno.test("aborting mid-stream ends the client's iteration and the fake counts the abort", async () => {
  await withFake({ tokens: 500, delayMs: 5 }, async (fake, client) => {
    const controller = new AbortController();
    const stream = await client.chat.completions.create(
      { model: "fake-model", messages: BIG_MESSAGES, stream: true },
      { signal: controller.signal },
    );
    let chunks = 0;
    for await (const _chunk of stream) {
      if (++chunks === 3) controller.abort();
    }
    assert.equal(chunks, 3);
    await waitFor(() => fake.calls.aborted === 1);
  });
});

Deno.test("aborting a paced non-streaming call is counted too", async () => {
  await withFake({ tokens: 500, delayMs: 5 }, async (fake, client) => {
    const controller = new AbortController();
    const request = client.chat.completions.create({ model: "fake-model", messages: BIG_MESSAGES }, {
      signal: controller.signal,
    });
    await waitFor(() => fake.calls.chat === 1);
    controller.abort();
    await assert.rejects(request, OpenAI.APIUserAbortError);
    await waitFor(() => fake.calls.aborted === 1);
  });
});

Deno.test("drop cuts the connection mid-body: Deno's fetch TypeError, not an APIError", async () => {
  await withFake({ faults: ["drop", "drop"] }, async (fake, client) => {
    await assert.rejects(streamText(client), TypeError);
    await assert.rejects(complete(client), TypeError);
    assert.equal(fake.calls.aborted, 0);
  });
});

Deno.test("malformed emits a broken SSE chunk that the client rejects", async () => {
  await withFake({ faults: ["malformed", "malformed"] }, async (_fake, client) => {
    await assert.rejects(streamText(client), SyntaxError);
    await assert.rejects(complete(client), SyntaxError);
  });
});

Deno.test("close cuts hanging calls so nothing leaks", async () => {
  const fake = await startFakeOpenAI({ fail: "hang" });
  const response = await fetch(`${fake.baseUrl}/chat/completions`, {
    method: "POST",
    body: JSON.stringify({ model: "fake-model", messages: MESSAGES }),
  });
  assert.equal(response.status, 200);
  await fake.close();
  await assert.rejects(response.text());
  assert.equal(fake.calls.aborted, 0);
});
