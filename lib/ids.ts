import { encodeBase64Url } from "./encoding.ts";

let lastTime = 0;
let sequence = 0;

/**
 * A random, URL-safe id that sorts by creation time: a time prefix, a counter that keeps ids
 * made in the same millisecond in order, then 80 random bits.
 */
export function newId(now = Date.now()): string {
  if (now === lastTime) sequence++;
  else {
    lastTime = now;
    sequence = 0;
  }
  const random = crypto.getRandomValues(new Uint8Array(10));
  return now.toString(36).padStart(9, "0") + sequence.toString(36).padStart(3, "0") + encodeBase64Url(random);
}

/** A stable, URL-safe id derived from `parts` (SHA-256, first 128 bits). */
export async function stableId(...parts: unknown[]): Promise<string> {
  const data = new TextEncoder().encode(JSON.stringify(parts));
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  return encodeBase64Url(digest.subarray(0, 16));
}
