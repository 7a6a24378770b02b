/** The dependencies main.ts builds once and passes down; tests build their own. */
import type { Clock } from "./clock.ts";
import type { Config } from "./config.ts";
import type { Drain } from "./drain.ts";
import type { JobStore } from "./jobs.ts";
import type { ModelDeps } from "./llm/models.ts";
import type { Logger } from "./log.ts";

export interface AppDeps {
  kv: Deno.Kv;
  config: Config;
  clock: Clock;
  log: Logger;
  jobs: JobStore;
  models: ModelDeps;
  version: string;
  /** Requests in flight, and whether the process is shutting down. */
  drain: Drain;
}
