/**
 * A fake OpenAI-compatible server for tests and benchmarks.
 *
 * Serves `/v1/chat/completions` (JSON and SSE), `/v1/audio/speech` (silent MP3) and `/v1/models`,
 * with deterministic replies, pacing, call counting, client-abort detection and fault injection.
 * Run it alone with `deno task fake-llm --port 8787 --tokens 200 --delay-ms 20`.
 */
import { parseArgs } from "node:util";

/** A failure the fake can inject into a call. */
export type FaultMode = "429" | "500" | "hang" | "drop" | "malformed";

/** A queued fault: a mode used once, or `{ mode, times }` used for `times` consecutive chat calls. */
export type Fault = FaultMode | { mode: FaultMode; times: number };

/** Runtime-adjustable behaviour of the fake. */
export interface FakeOpenAIOptions {
  /** Model name served by `/v1/models` and echoed when a request names none (default `fake-model`). */
  model: string;
  /** Words per generated reply, i.e. `completion_tokens` (default 60). */
  tokens: number;
  /** Delay before each token; non-streaming replies take `tokens * delayMs` too (default 0). */
  delayMs: number;
  /** When set, requests must send `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Fault for every chat call while the queue is empty; speech honours "429", "500" and "hang". */
  fail?: FaultMode;
  /** `Retry-After` seconds sent with 429 responses (default 1). */
  retryAfterSec: number;
}

/** Options for {@link startFakeOpenAI}. */
export interface StartFakeOpenAIOptions extends Partial<FakeOpenAIOptions> {
  /** Port to listen on (default 0: any free port). */
  port?: number;
  /** Initial fault queue, see {@link FakeOpenAI.setFaults}. */
  faults?: Fault[];
  /** Initial speech fault queue, see {@link FakeOpenAI.setSpeechFaults}. */
  speechFaults?: Fault[];
}

/** One call received by the fake. */
export interface CallLogEntry {
  path: string;
  model: string | undefined;
  stream: boolean;
  messages?: ChatMessage[];
}

/** Counters of calls received by the fake. */
export interface FakeCalls {
  chat: number;
  speech: number;
  /** Chat calls whose client went away before the reply was complete. */
  aborted: number;
  /** Calls of any route refused with 401 for a wrong API key. */
  refused: number;
  log: CallLogEntry[];
}

/** A running fake server. */
export interface FakeOpenAI {
  /** e.g. `http://127.0.0.1:PORT/v1`, ready for `new OpenAI({ baseURL })`. */
  baseUrl: string;
  calls: FakeCalls;
  /** Replaces the fault queue; one entry is consumed per chat call. */
  setFaults(faults: Fault[]): void;
  /** Replaces the speech fault queue ("429", "500", "hang"); one entry is consumed per speech call. */
  setSpeechFaults(faults: Fault[]): void;
  /** Changes options for subsequent calls (`{ fail: undefined }` clears `fail`). */
  setOptions(partial: Partial<FakeOpenAIOptions>): void;
  /** Cuts pending responses (hangs and streams end with a network error) and stops the server. */
  close(): Promise<void>;
}

/** A chat message as sent by clients; `content` is a string or an array of parts. */
export interface ChatMessage {
  role: string;
  content?: unknown;
}

interface ChatRequest {
  model?: string;
  messages: ChatMessage[];
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
}

interface Reply {
  id: string;
  model: string;
  created: number;
  pieces: string[];
  promptTokens: number;
  includeUsage: boolean;
}

interface ChatCall {
  reply: Reply;
  delayMs: number;
  fault: FaultMode | undefined;
  exchange: Exchange;
}

interface State {
  options: FakeOpenAIOptions;
  faults: { mode: FaultMode; times: number }[];
  speechFaults: { mode: FaultMode; times: number }[];
  calls: FakeCalls;
  closing: AbortSignal;
}

/**
 * One response in flight. `signal` fires when the client goes away or the server closes.
 * Client aborts are seen through the response body's `cancel`: Deno.serve does not fire
 * `request.signal` for a dropped client while a handler is pending once the request body
 * exceeds a few hundred bytes, so every chat/hang response streams its body.
 */
interface Exchange {
  signal: AbortSignal;
  cancelled(): void;
  finish(): void;
}

/** Errors the fake raises on purpose to cut a response; kept out of the server's error log. */
class InjectedFault extends Error {}

const DEFAULTS: FakeOpenAIOptions = { model: "fake-model", tokens: 60, delayMs: 0, retryAfterSec: 1 };
const FAULT_MODES: readonly FaultMode[] = ["429", "500", "hang", "drop", "malformed"];
const HEARTBEAT_MS = 50;
const SSE_HEADERS = { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" };
const JSON_HEADERS = { "content-type": "application/json" };
/** Hanging responses write a parser-ignored beat every HEARTBEAT_MS, so a gone client is noticed. */
const KEEP_ALIVE = {
  sse: { headers: SSE_HEADERS, beat: ": keep-alive\n\n" },
  json: { headers: JSON_HEADERS, beat: "\n" },
  mpeg: { headers: { "content-type": "audio/mpeg" }, beat: "\0" },
};
const encoder = new TextEncoder();

/** Starts the fake on 127.0.0.1 and resolves once it is listening. */
export function startFakeOpenAI(options: StartFakeOpenAIOptions = {}): Promise<FakeOpenAI> {
  return Promise.try(() => listen(options));
}

/** The reply text the fake generates for `messages` (honours `FAKE_REPLY:` lines). */
export function fakeReplyText(messages: ChatMessage[], tokens: number = DEFAULTS.tokens): string {
  return replyPieces(messages, tokens).join("");
}

function listen(options: StartFakeOpenAIOptions): FakeOpenAI {
  const { port = 0, faults = [], speechFaults = [], ...rest } = options;
  const closing = new AbortController();
  const state: State = {
    options: { ...DEFAULTS, ...definedOnly(rest) },
    faults: queueOf(faults),
    speechFaults: queueOf(speechFaults),
    calls: { chat: 0, speech: 0, aborted: 0, refused: 0, log: [] },
    closing: closing.signal,
  };
  const server = Deno.serve(
    { hostname: "127.0.0.1", port, onListen() {}, onError },
    (req) => route(state, req),
  );
  return {
    baseUrl: `http://127.0.0.1:${server.addr.port}/v1`,
    calls: state.calls,
    setFaults: (next) => void (state.faults = queueOf(next)),
    setSpeechFaults: (next) => void (state.speechFaults = queueOf(next)),
    setOptions: (partial) => void (state.options = { ...state.options, ...partial }),
    close: async () => {
      closing.abort();
      await server.shutdown();
    },
  };
}

function onError(error: unknown): Response {
  if (!(error instanceof InjectedFault)) console.error("fake OpenAI:", error);
  return openAIError(500, "Fake server bug.", "server_error", null);
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function queueOf(faults: Fault[]): State["faults"] {
  return faults.map((fault) => typeof fault === "string" ? { mode: fault, times: 1 } : { ...fault });
}

function nextFault(state: State, queue = state.faults): FaultMode | undefined {
  const head = queue[0];
  if (!head) return state.options.fail;
  if (--head.times <= 0) queue.shift();
  return head.mode;
}

function route(state: State, req: Request): Promise<Response> | Response {
  if (!authorized(state.options.apiKey, req)) {
    state.calls.refused++;
    return openAIError(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key");
  }
  const { pathname } = new URL(req.url);
  if (req.method === "POST" && pathname === "/v1/chat/completions") return chat(state, req);
  if (req.method === "POST" && pathname === "/v1/audio/speech") return speech(state, req);
  if (req.method === "GET" && pathname === "/v1/models") return models(state.options.model);
  return openAIError(404, `Unknown route ${req.method} ${pathname}`, "invalid_request_error", "not_found");
}

function authorized(apiKey: string | undefined, req: Request): boolean {
  return apiKey === undefined || req.headers.get("authorization") === `Bearer ${apiKey}`;
}

function openAIError(status: number, message: string, type: string, code: string | null, headers = {}) {
  return Response.json({ error: { message, type, param: null, code } }, { status, headers });
}

function models(model: string): Response {
  return Response.json({
    object: "list",
    data: [{ id: model, object: "model", created: 0, owned_by: "fake" }],
  });
}

async function readJson(req: Request): Promise<Record<string, unknown> | undefined> {
  try {
    const body = await req.json();
    return body && typeof body === "object" ? body : undefined;
  } catch {
    return undefined;
  }
}

async function chat(state: State, req: Request): Promise<Response> {
  const body = await readJson(req);
  if (!Array.isArray(body?.messages)) {
    return openAIError(400, "'messages' is a required array.", "invalid_request_error", null);
  }
  const request = body as unknown as ChatRequest;
  const stream = request.stream === true;
  state.calls.chat++;
  state.calls.log.push({
    path: "/v1/chat/completions",
    model: request.model,
    stream,
    messages: request.messages,
  });
  const fault = nextFault(state);
  const exchange = track(state, () => state.calls.aborted++);
  const failure = failureResponse(state.options, fault, exchange, stream ? "sse" : "json");
  if (failure) return failure;
  const call: ChatCall = {
    reply: planReply(request, state.options),
    delayMs: state.options.delayMs,
    fault,
    exchange,
  };
  const frames = stream ? sseFrames(call) : completionFrames(call);
  return new Response(bodyStream(frames, exchange), { headers: stream ? SSE_HEADERS : JSON_HEADERS });
}

/** Answers "429", "500" and "hang"; other faults shape the body instead. */
function failureResponse(
  options: FakeOpenAIOptions,
  fault: FaultMode | undefined,
  exchange: Exchange,
  kind: keyof typeof KEEP_ALIVE,
): Response | undefined {
  if (fault === "429") {
    exchange.finish();
    const headers = { "retry-after": String(options.retryAfterSec) };
    return openAIError(429, "Rate limit reached (fake).", "requests", "rate_limit_exceeded", headers);
  }
  if (fault === "500") {
    exchange.finish();
    return openAIError(500, "The server had an error (fake).", "server_error", null);
  }
  if (fault !== "hang") return undefined;
  const { headers, beat } = KEEP_ALIVE[kind];
  return new Response(bodyStream(heartbeats(beat, exchange.signal), exchange), { headers });
}

function track(state: State, onClientAbort: () => void): Exchange {
  const controller = new AbortController();
  let settled = false;
  return {
    signal: AbortSignal.any([controller.signal, state.closing]),
    cancelled: () => {
      if (!settled && !state.closing.aborted) onClientAbort();
      settled = true;
      controller.abort();
    },
    finish: () => void (settled = true),
  };
}

function planReply(request: ChatRequest, options: FakeOpenAIOptions): Reply {
  return {
    id: `chatcmpl-fake-${crypto.randomUUID()}`,
    model: request.model ?? options.model,
    created: Math.floor(Date.now() / 1000),
    pieces: replyPieces(request.messages, options.tokens),
    promptTokens: request.messages.map(messageText).join(" ").split(/\s+/).filter(Boolean).length,
    includeUsage: request.stream_options?.include_usage === true,
  };
}

function replyPieces(messages: ChatMessage[], tokens: number): string[] {
  const injected = messages.map(messageText).reverse().join("\n").match(/^FAKE_REPLY: ?(.*)$/m);
  const text = injected ? injected[1] : generatedText(messages, tokens);
  return text.match(/\S+\s*|\s+/g) ?? [];
}

function generatedText(messages: ChatMessage[], tokens: number): string {
  const lastUser = messages.findLast((message) => message.role === "user");
  const words = ["Answer", `${shortHash(lastUser ? messageText(lastUser) : "")}:`];
  for (let i = 1; words.length < tokens; i++) words.push(`word${i}`);
  return words.slice(0, tokens).join(" ");
}

function messageText(message: ChatMessage): string {
  if (typeof message.content === "string") return message.content;
  if (!Array.isArray(message.content)) return "";
  return message.content.map((part) => typeof part?.text === "string" ? part.text : "").join("\n");
}

/** FNV-1a, 32 bits, as 8 hex digits. */
function shortHash(text: string): string {
  let hash = 0x811c9dc5;
  for (const byte of encoder.encode(text)) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  return hash.toString(16).padStart(8, "0");
}

function usage(reply: Reply) {
  const completion = reply.pieces.length;
  return {
    prompt_tokens: reply.promptTokens,
    completion_tokens: completion,
    total_tokens: reply.promptTokens + completion,
  };
}

/** A JSON completion, preceded while "thinking" by one whitespace byte per token (valid JSON). */
async function* completionFrames({ reply, delayMs, fault, exchange }: ChatCall): AsyncGenerator<string> {
  for (let i = 0; delayMs > 0 && i < reply.pieces.length; i++) {
    await pace(delayMs, exchange.signal);
    yield " ";
  }
  const json = JSON.stringify(completionJson(reply));
  exchange.finish();
  if (fault === "malformed") yield "{not json";
  else if (fault === "drop") yield* dropAfter(json.slice(0, json.length >> 1));
  else yield json;
}

function completionJson(reply: Reply) {
  const message = { role: "assistant", content: reply.pieces.join(""), refusal: null };
  return {
    id: reply.id,
    object: "chat.completion",
    created: reply.created,
    model: reply.model,
    choices: [{ index: 0, message, logprobs: null, finish_reason: "stop" }],
    usage: usage(reply),
  };
}

async function* sseFrames({ reply, delayMs, fault, exchange }: ChatCall): AsyncGenerator<string> {
  const midway = reply.pieces.length >> 1;
  yield chunkFrame(reply, [choice({ role: "assistant", content: "", refusal: null })]);
  for (const [i, piece] of reply.pieces.entries()) {
    if (i === midway && fault === "drop") {
      exchange.finish();
      yield* dropAfter();
    }
    if (i === midway && fault === "malformed") yield "data: {not json\n\n";
    await pace(delayMs, exchange.signal);
    yield chunkFrame(reply, [choice({ content: piece })]);
  }
  yield chunkFrame(reply, [choice({}, "stop")]);
  if (reply.includeUsage) yield chunkFrame(reply, [], usage(reply));
  exchange.finish();
  yield "data: [DONE]\n\n";
}

function choice(delta: object, finishReason: string | null = null) {
  return { index: 0, delta, finish_reason: finishReason };
}

function chunkFrame(reply: Reply, choices: unknown[], finalUsage?: ReturnType<typeof usage>): string {
  const { id, created, model } = reply;
  const chunk = { id, object: "chat.completion.chunk", created, model, choices };
  return `data: ${JSON.stringify(reply.includeUsage ? { ...chunk, usage: finalUsage ?? null } : chunk)}\n\n`;
}

async function* dropAfter(...frames: string[]): AsyncGenerator<string, never> {
  yield* frames;
  throw new InjectedFault("fake OpenAI dropped the response");
}

async function* heartbeats(beat: string, signal: AbortSignal): AsyncGenerator<string, never> {
  while (true) {
    await pace(HEARTBEAT_MS, signal);
    yield beat;
  }
}

/** A byte stream pulled from `frames`; it errors when `frames` throws and reports a client cancel. */
function bodyStream(frames: AsyncGenerator<string>, exchange: Exchange): ReadableStream<Uint8Array> {
  return new ReadableStream({
    async pull(controller) {
      const next = await frames.next();
      if (next.done) controller.close();
      else controller.enqueue(encoder.encode(next.value));
    },
    cancel: exchange.cancelled,
  });
}

/** Waits `ms`, then throws if the response was cancelled or the server is closing. */
async function pace(ms: number, signal: AbortSignal): Promise<void> {
  await sleep(ms, signal);
  if (signal.aborted) throw new InjectedFault("fake OpenAI response cut");
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

async function speech(state: State, req: Request): Promise<Response> {
  const body = await readJson(req);
  if (typeof body?.input !== "string") {
    return openAIError(400, "'input' is a required string.", "invalid_request_error", null);
  }
  state.calls.speech++;
  const model = typeof body.model === "string" ? body.model : undefined;
  state.calls.log.push({ path: "/v1/audio/speech", model, stream: false });
  const fault = nextFault(state, state.speechFaults);
  const failure = failureResponse(state.options, fault, track(state, () => {}), "mpeg");
  return failure ?? new Response(silentMp3(body.input.length), { headers: KEEP_ALIVE.mpeg.headers });
}

/** MPEG-1 Layer III, 32 kbps, 44.1 kHz, mono, no CRC: 104-byte frames of silence (~26 ms each). */
const MP3_FRAME_HEADER = [0xff, 0xfb, 0x10, 0xc4];
const MP3_FRAME_BYTES = 104;

/** One silent frame per input character (at least one). */
function silentMp3(chars: number): Uint8Array<ArrayBuffer> {
  const frames = Math.max(1, chars);
  const bytes = new Uint8Array(frames * MP3_FRAME_BYTES);
  for (let i = 0; i < frames; i++) bytes.set(MP3_FRAME_HEADER, i * MP3_FRAME_BYTES);
  return bytes;
}

function parseCli(args: string[]): StartFakeOpenAIOptions {
  const { values } = parseArgs({
    args,
    options: {
      port: { type: "string", default: "8787" },
      tokens: { type: "string" },
      "delay-ms": { type: "string" },
      fail: { type: "string" },
      "api-key": { type: "string" },
      model: { type: "string" },
    },
  });
  const fail = values.fail as FaultMode | undefined;
  if (fail !== undefined && !FAULT_MODES.includes(fail)) {
    throw new Error(`--fail must be one of ${FAULT_MODES}`);
  }
  const number = (value: string | undefined) => value === undefined ? undefined : Number(value);
  return {
    port: number(values.port),
    tokens: number(values.tokens),
    delayMs: number(values["delay-ms"]),
    fail,
    apiKey: values["api-key"],
    model: values.model,
  };
}

if (import.meta.main) {
  const fake = await startFakeOpenAI(parseCli(Deno.args));
  console.log(`fake OpenAI listening on ${fake.baseUrl}`);
  Deno.addSignalListener("SIGINT", async () => {
    const { chat, speech, aborted } = fake.calls;
    console.log(`calls: chat=${chat} speech=${speech} aborted=${aborted}`);
    await fake.close();
    Deno.exit(0);
  });
}
