/// <reference lib="deno.worker" />
/** The Worker behind lib/token_counter.ts: counts the tokens of each text it is sent. */
import { countTokens } from "./tokens.ts";

self.onmessage = (e: MessageEvent<{ id: number; text: string }>) => {
  self.postMessage({ id: e.data.id, tokens: countTokens(e.data.text) });
};
