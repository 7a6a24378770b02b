/**
 * API keys: `rk_` + 32 random bytes (base64url). Only the SHA-256 hash of a key is stored, so a
 * copy of the database does not hand out working keys; the secret is shown once, at creation.
 */
import { timingSafeEqual } from "node:crypto";
import type { Clock } from "./clock.ts";
import { encodeBase64Url, sha256Hex } from "./encoding.ts";
import { newId } from "./ids.ts";
import { keys } from "./keys.ts";
import { commitWithRetry } from "./kv_util.ts";

export interface ApiKeyRecord {
  id: string;
  name: string;
  tier: string;
  /** The first characters of the secret, so a person can tell keys apart in a list. */
  prefix: string;
  createdAt: number;
  revokedAt?: number;
}

const KEY_SHAPE = /^rk_[A-Za-z0-9_-]{43}$/;
const encoder = new TextEncoder();

/** Hex SHA-256 of a key: its only stored form. */
export function hashApiKey(secret: string): Promise<string> {
  return sha256Hex(secret);
}

/** Creates a key for `tier`; returns the secret (shown once) and the stored record. */
export async function createApiKey(
  kv: Deno.Kv,
  clock: Clock,
  spec: { name: string; tier: string },
): Promise<{ secret: string; record: ApiKeyRecord }> {
  const secret = `rk_${encodeBase64Url(crypto.getRandomValues(new Uint8Array(32)))}`;
  const hash = await hashApiKey(secret);
  const record: ApiKeyRecord = {
    id: newId(clock.now()),
    name: spec.name,
    tier: spec.tier,
    prefix: secret.slice(0, 7),
    createdAt: clock.now(),
  };
  const result = await commitWithRetry(() =>
    kv.atomic()
      .check({ key: keys.apiKey(hash), versionstamp: null })
      .check({ key: keys.apiKeyId(record.id), versionstamp: null })
      .set(keys.apiKey(hash), record)
      .set(keys.apiKeyId(record.id), hash)
      .commit()
  );
  if (!result.ok) throw new Error("could not store the new API key");
  return { secret, record };
}

/** Every key, newest first, revoked ones included (with `revokedAt`). */
export async function listApiKeys(kv: Deno.Kv): Promise<ApiKeyRecord[]> {
  const out: ApiKeyRecord[] = [];
  for await (const entry of kv.list<string>({ prefix: keys.apiKeyIdPrefix() }, { reverse: true })) {
    const record = await kv.get<ApiKeyRecord>(keys.apiKey(entry.value));
    if (record.value) out.push(record.value);
  }
  return out;
}

/** Revokes a key by id; it answers 401 from then on. Returns the record, or null if unknown. */
export async function revokeApiKey(kv: Deno.Kv, clock: Clock, id: string): Promise<ApiKeyRecord | null> {
  for (;;) {
    const hash = (await kv.get<string>(keys.apiKeyId(id))).value;
    if (!hash) return null;
    const entry = await kv.get<ApiKeyRecord>(keys.apiKey(hash));
    if (!entry.value) return null;
    if (entry.value.revokedAt) return entry.value;
    const record = { ...entry.value, revokedAt: clock.now() };
    const result = await commitWithRetry(() =>
      kv.atomic().check(entry).set(keys.apiKey(hash), record).commit()
    );
    if (result.ok) return record;
  }
}

/** The live record for a presented key, or null when it is malformed, unknown or revoked. */
export async function verifyApiKey(kv: Deno.Kv, secret: string): Promise<ApiKeyRecord | null> {
  if (!KEY_SHAPE.test(secret)) return null;
  const record = (await kv.get<ApiKeyRecord>(keys.apiKey(await hashApiKey(secret)))).value;
  return record && !record.revokedAt ? record : null;
}

/**
 * Compares a presented secret with the expected one in constant time: both are hashed first, so
 * neither the content nor the length of the expected secret leaks through timing.
 */
export async function secretMatches(presented: string, expected: string): Promise<boolean> {
  const [a, b] = await Promise.all(
    [presented, expected].map((s) => crypto.subtle.digest("SHA-256", encoder.encode(s))),
  );
  return timingSafeEqual(new Uint8Array(a), new Uint8Array(b));
}
