/** The one interface every language-model provider implements, and the tasks it is given. */
import type { TreeFile } from "../ingest.ts";
import type { RepoSource, RepoStats } from "../repos.ts";

export type ArtifactKind = "overview" | "slides" | "podcast" | "concepts";
export type Expertise = "beginner" | "intermediate" | "expert";

export interface Usage {
  inputTokens: number;
  outputTokens: number;
}

/** A retrieved or selected span of a file, with the lines it covers (1-based, inclusive). */
export interface Passage {
  path: string;
  startLine: number;
  endLine: number;
  text: string;
  score?: number;
}

/** What a provider knows about a repository: facts, the tree, and file texts chosen within a budget. */
export interface RepoContext {
  title: string;
  source: RepoSource;
  stats: RepoStats;
  /** Every stored file (no contents), most important first. */
  tree: TreeFile[];
  /** Contents of the most important files that fit the token budget, most important first. */
  files: { path: string; text: string; tokens: number }[];
  /** Retrieval hits for the question or concept, best first (chat and concepts). */
  passages: Passage[];
}

export interface GenerationTask {
  kind: ArtifactKind;
  expertise: Expertise;
  /** The concept to explain, for `concepts`. */
  concept?: string;
  context: RepoContext;
}

export interface ChatMessage {
  role: "user" | "assistant";
  content: string;
}

export interface ChatTask {
  messages: ChatMessage[];
  /** Lines the user selected; always in context. */
  selection?: Passage;
  context: RepoContext;
}

/** A piece of streamed output: text, and at the end the usage. */
export interface Delta {
  text?: string;
  usage?: Usage;
}

export interface LlmProvider {
  readonly name: "openai" | "offline";
  readonly model: string;
  readonly offline: boolean;
  /** Streams an artifact's text. Must stop promptly when `signal` aborts. */
  generate(task: GenerationTask, signal: AbortSignal): AsyncIterable<Delta>;
  /** Streams a chat answer. Must stop promptly when `signal` aborts. */
  chat(task: ChatTask, signal: AbortSignal): AsyncIterable<Delta>;
  /** Speaks `input` with `voice` as MP3 bytes; absent when speech is not configured. */
  speech?(input: string, voice: string, signal: AbortSignal): Promise<Uint8Array>;
}

/**
 * The podcast script format every provider writes and the page and speech synthesis read:
 * one line per turn, `HOST: text`, the two hosts being PODCAST_HOSTS.
 */
export const PODCAST_HOSTS = ["Alex", "Sam"] as const;

/** Slides are Markdown separated by a line holding only `---`. */
export const SLIDE_SEPARATOR = "\n---\n";
