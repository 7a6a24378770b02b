/** Builds the model dependencies from configuration: one provider client per process. */
import { ArtifactHub } from "../artifact_hub.ts";
import type { Clock } from "../clock.ts";
import type { Config } from "../config.ts";
import { ModelBudget } from "./budget.ts";
import { Circuit } from "./circuit.ts";
import type { ModelDeps } from "./models.ts";
import { OpenAiProvider } from "./openai_provider.ts";
import type { LlmProvider } from "./types.ts";

/** The model deps for `config`; `offline` is the provider used without a key and as the fallback. */
export function createModels(config: Config, kv: Deno.Kv, clock: Clock, offline: LlmProvider): ModelDeps {
  const c = config.llm;
  const llm = c.apiKey
    ? new OpenAiProvider({
      apiKey: c.apiKey,
      baseUrl: c.baseUrl,
      model: c.model,
      timeoutMs: c.timeoutMs,
      ttsModel: c.ttsModel,
    })
    : offline;
  const circuitOptions = {
    threshold: c.circuitThreshold,
    cooldownMs: c.circuitCooldownMs,
    probeMs: c.timeoutMs,
  };
  return {
    llm,
    offline,
    fallbackToOffline: c.fallbackToOffline,
    circuit: new Circuit(kv, clock, llm.name, circuitOptions),
    speechCircuit: new Circuit(kv, clock, `${llm.name}:speech`, circuitOptions),
    budget: new ModelBudget(kv, clock, {
      maxInFlight: c.maxInFlight,
      tokensPerMinute: c.tokensPerMinute,
      slotLeaseMs: c.timeoutMs + 30_000,
    }),
    retry: { maxRetries: c.maxRetries, baseMs: 500, capMs: 20_000 },
    hub: new ArtifactHub(kv),
    ttsVoices: c.ttsVoices.length >= 2 ? c.ttsVoices : [...c.ttsVoices, "alloy", "onyx"].slice(0, 2),
  };
}
