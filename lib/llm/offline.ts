/**
 * The offline provider, the default when no model API key is set: it writes every artifact and
 * chat answer from facts read out of the repository itself, streamed like a model's output.
 */
import { countTokens as countCl100k } from "../tokens.ts";
import { extractFacts, rankPassages } from "./offline_facts.ts";
import {
  writeChatAnswer,
  writeConcept,
  writeOverview,
  writePodcast,
  writeSlides,
} from "./offline_writers.ts";
import type { ChatTask, Delta, GenerationTask, LlmProvider } from "./types.ts";

/** Options for the offline provider; every one has a default. */
export interface OfflineProviderOptions {
  /** Counts output tokens for the usage report (cl100k_base by default, as for stored files). */
  countTokens?: (text: string) => number;
}

/** Splits text into paragraph-sized pieces that concatenate back to exactly the text. */
function pieces(text: string): string[] {
  return text.match(/[\s\S]*?(?:\n\n|$)/g)?.filter(Boolean) ?? [text];
}

/** Writes artifacts and chat answers without a model (name and model "offline"). */
export class OfflineProvider implements LlmProvider {
  readonly name = "offline" as const;
  readonly model = "offline";
  readonly offline = true;
  readonly #countTokens: (text: string) => number;

  constructor(options: OfflineProviderOptions = {}) {
    this.#countTokens = options.countTokens ?? countCl100k;
  }

  generate(task: GenerationTask, signal: AbortSignal): AsyncIterable<Delta> {
    return this.#stream(() => {
      const facts = extractFacts(task.context);
      switch (task.kind) {
        case "overview":
          return writeOverview(facts, task.expertise);
        case "slides":
          return writeSlides(facts, task.expertise);
        case "podcast":
          return writePodcast(facts, task.expertise);
        case "concepts": {
          const concept = task.concept ?? "";
          const passages = rankPassages(task.context.passages, task.context.tree.map((f) => f.path), concept);
          return writeConcept(concept, passages, facts, task.expertise);
        }
      }
    }, signal);
  }

  chat(task: ChatTask, signal: AbortSignal): AsyncIterable<Delta> {
    const question = task.messages.findLast((m) => m.role === "user")?.content ?? "";
    return this.#stream(() => {
      const passages = rankPassages(task.context.passages, task.context.tree.map((f) => f.path), question);
      return writeChatAnswer(question, passages, task.selection);
    }, signal);
  }

  async *#stream(write: () => string, signal: AbortSignal): AsyncGenerator<Delta> {
    signal.throwIfAborted();
    const text = write();
    for (const piece of pieces(text)) {
      // An aborted stream must end in an error, never pass for a complete (shorter) artifact.
      signal.throwIfAborted();
      yield { text: piece };
    }
    signal.throwIfAborted();
    yield { usage: { inputTokens: 0, outputTokens: this.#countTokens(text) } };
  }
}
