/**
 * The OpenAI-compatible provider (OpenAI, Gemini, Ollama, vLLM …) through the `openai` package:
 * one client per process, streaming with usage, a timeout and an AbortSignal on every call.
 * The client's own retries are off: lib/llm/resilient.ts retries with full jitter and a shared
 * circuit breaker instead, so an outage is not multiplied by every instance.
 */
import type OpenAI from "openai";
import type { APIConnectionError, APIError } from "openai";
import { artifactMessages, chatMessages } from "./prompts.ts";
import type { ChatTask, Delta, GenerationTask, LlmProvider } from "./types.ts";

export interface OpenAiProviderConfig {
  apiKey: string;
  baseUrl?: string;
  model: string;
  timeoutMs: number;
  ttsModel?: string;
  /**
   * Longest wait for the next streamed chunk (or for a speech body) before the call counts as
   * hung; `timeoutMs` unless set, so a slow model given a long LLM_TIMEOUT may pause that long.
   */
  idleMs?: number;
}

/** Thrown when a stream stalls: the `openai` client's timeout does not cover a streaming body. */
export class StreamStalledError extends Error {
  constructor() {
    super("the model stopped sending for too long");
  }
}

/**
 * The `openai` package, loaded when a process first calls the model: it adds ~11 MB to a process's
 * memory, which an instance on the offline provider, or one that only ingests, never needs.
 */
let sdk: typeof OpenAI | null = null;

async function loadSdk(): Promise<typeof OpenAI> {
  sdk ??= (await import("openai")).default;
  return sdk;
}

/** An HTTP error from the model's API (the SDK's `APIError`, which connection errors extend too). */
export const isApiError = (e: unknown): e is APIError => sdk !== null && e instanceof sdk.APIError;

/** The model's API could not be reached, or the connection failed before a response. */
export const isConnectionError = (e: unknown): e is APIConnectionError =>
  sdk !== null && e instanceof sdk.APIConnectionError;

type Message = { role: "system" | "user" | "assistant"; content: string };

export class OpenAiProvider implements LlmProvider {
  readonly name = "openai" as const;
  readonly offline = false;
  readonly model: string;
  #client: Promise<OpenAI> | null = null;
  readonly #config: OpenAiProviderConfig;

  constructor(config: OpenAiProviderConfig) {
    this.#config = config;
    this.model = config.model;
    if (config.ttsModel) this.speech = this.#speech.bind(this);
  }

  /** The one client of this provider, made on its first call (see {@link loadSdk}). */
  #getClient(): Promise<OpenAI> {
    const { apiKey, baseUrl, timeoutMs } = this.#config;
    return this.#client ??= loadSdk().then((OpenAI) =>
      new OpenAI({ apiKey, baseURL: baseUrl, maxRetries: 0, timeout: timeoutMs, logLevel: "off" })
    );
  }

  speech?: (input: string, voice: string, signal: AbortSignal) => Promise<Uint8Array>;

  generate(task: GenerationTask, signal: AbortSignal): AsyncIterable<Delta> {
    return this.#stream(artifactMessages(task), signal, 4096);
  }

  chat(task: ChatTask, signal: AbortSignal): AsyncIterable<Delta> {
    return this.#stream(chatMessages(task), signal, 2048);
  }

  async *#stream(messages: Message[], signal: AbortSignal, maxTokens: number): AsyncGenerator<Delta> {
    const local = new AbortController();
    const abort = () => local.abort(signal.reason);
    signal.addEventListener("abort", abort, { once: true });
    try {
      const client = await this.#getClient();
      const stream = await client.chat.completions.create({
        model: this.model,
        messages,
        stream: true,
        stream_options: { include_usage: true },
        max_tokens: maxTokens,
      }, { signal: local.signal, timeout: this.#config.timeoutMs });
      const iterator = stream[Symbol.asyncIterator]();
      while (true) {
        const next = await this.#withIdleLimit(iterator.next(), local);
        // The client ends an aborted stream quietly; an abort must not pass for a complete answer.
        signal.throwIfAborted();
        if (next.done) break;
        const chunk = next.value;
        const text = chunk.choices[0]?.delta?.content;
        if (text) yield { text };
        if (chunk.usage) {
          yield {
            usage: { inputTokens: chunk.usage.prompt_tokens, outputTokens: chunk.usage.completion_tokens },
          };
        }
      }
    } finally {
      signal.removeEventListener("abort", abort);
      local.abort();
    }
  }

  async #withIdleLimit<T>(next: Promise<T>, local: AbortController): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const idle = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        local.abort();
        reject(new StreamStalledError());
      }, this.#config.idleMs ?? this.#config.timeoutMs);
    });
    try {
      return await Promise.race([next, idle]);
    } finally {
      clearTimeout(timer);
    }
  }

  async #speech(input: string, voice: string, signal: AbortSignal): Promise<Uint8Array> {
    const stop = new AbortController();
    try {
      const client = await this.#getClient();
      const res = await client.audio.speech.create(
        { model: this.#config.ttsModel!, voice, input, response_format: "mp3" },
        { signal: AbortSignal.any([signal, stop.signal]), timeout: this.#config.timeoutMs },
      );
      // the client's timeout ends with the headers: a body that hangs would hold the job
      return new Uint8Array(await this.#withIdleLimit(res.arrayBuffer(), stop));
    } finally {
      stop.abort();
    }
  }
}
