/** Everything model work needs, built once per process in main.ts (and by the tests). */
import type { ArtifactHub } from "../artifact_hub.ts";
import type { ModelBudget } from "./budget.ts";
import type { Circuit } from "./circuit.ts";
import type { RetryOptions } from "./resilient.ts";
import type { LlmProvider } from "./types.ts";

export interface ModelDeps {
  /** The configured provider: OpenAI-compatible when a key is set, else the offline one. */
  llm: LlmProvider;
  /** The provider that needs no model, for offline mode and as a fallback. */
  offline: LlmProvider;
  /** Serve offline artifacts instead of 503 while the circuit is open. */
  fallbackToOffline: boolean;
  circuit: Circuit;
  /** Speech has its own: a speech outage must not refuse text generation and chat. */
  speechCircuit: Circuit;
  budget: ModelBudget;
  retry: RetryOptions;
  hub: ArtifactHub;
  ttsVoices: string[];
}
