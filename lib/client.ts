/**
 * Who is asking. An anonymous client is its connection's address (X-Forwarded-For counts only
 * through `TRUST_PROXY` trusted hops, so a forged header never buys a fresh limit); a client with
 * an API key is that key, with its tier's limits. Every limit in lib/ is partitioned by `Client.id`.
 */
import type { Context } from "hono";
import { verifyApiKey } from "./api_keys.ts";
import type { Config } from "./config.ts";
import { AppError } from "./errors.ts";

export type ClientKind = "anonymous" | "key";

/** A caller as limits see it. Plain data, so it can ride in a job payload (quota settlement). */
export interface Client {
  /** Partition key of every limit: `ip:1.2.3.4`, `ip6:2001:db8:0:1::/64` or `key:ID`. */
  id: string;
  kind: ClientKind;
  tier: string;
  /** The API key's id (never the secret). */
  keyId?: string;
  /** The address the request came from, after trusted proxies. */
  address: string;
  /** How much the tier multiplies rate limits and the daily token quota. */
  multiplier: number;
  /** Daily model-token limits that apply to this client (0 = none). */
  quota: { dailyTokens: number; globalDailyTokens: number };
}

/** Parses an IPv4 address (optionally with `:port`); null when it is not one. */
function parseIpv4(text: string): string | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?::\d{1,5})?$/.exec(text);
  if (!m) return null;
  const parts = m.slice(1, 5).map(Number);
  return parts.every((p) => p <= 255) ? parts.join(".") : null;
}

/** Parses an IPv6 address into its 8 groups; IPv4-mapped addresses come back as IPv4. */
function parseIpv6(text: string): number[] | string | null {
  let t = text;
  const bracket = /^\[([^\]]+)\](?::\d{1,5})?$/.exec(t);
  if (bracket) t = bracket[1];
  t = t.replace(/%.*$/, "").toLowerCase();
  if (!/^[0-9a-f:.]+$/.test(t) || !t.includes(":")) return null;
  let tail: number[] = [];
  const v4 = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(t);
  if (v4) {
    const ip = parseIpv4(v4[2]);
    if (!ip) return null;
    const b = ip.split(".").map(Number);
    tail = [(b[0] << 8) | b[1], (b[2] << 8) | b[3]];
    t = v4[1].endsWith("::") ? v4[1] : v4[1].slice(0, -1);
  }
  const halves = t.split("::");
  if (halves.length > 2) return null;
  const group = (s: string) => (s ? s.split(":") : []);
  const head = group(halves[0]);
  const rest = halves.length === 2 ? group(halves[1]) : [];
  const present = head.length + rest.length + tail.length;
  if (halves.length === 1 ? present !== 8 : present > 7) return null;
  const words: number[] = [];
  for (const g of [...head, ...Array(8 - present).fill("0"), ...rest]) {
    if (!/^[0-9a-f]{1,4}$/.test(g)) return null;
    words.push(parseInt(g, 16));
  }
  words.push(...tail);
  if (words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff) {
    return [words[6] >> 8, words[6] & 255, words[7] >> 8, words[7] & 255].join(".");
  }
  return words;
}

/**
 * The limit partition of an address: IPv4 as is, IPv6 by its /64 (one host usually owns a whole
 * /64, so per-address limits would be free to dodge). Null when `text` is not an address.
 */
export function addressKey(text: string): { address: string; id: string } | null {
  const t = text.trim().replace(/^"|"$/g, "");
  const v4 = parseIpv4(t);
  if (v4) return { address: v4, id: `ip:${v4}` };
  const v6 = parseIpv6(t);
  if (typeof v6 === "string") return { address: v6, id: `ip:${v6}` };
  if (!v6) return null;
  const hex = v6.map((w) => w.toString(16));
  return { address: hex.join(":"), id: `ip6:${hex.slice(0, 4).join(":")}::/64` };
}

/**
 * The client's address: the connection's peer, or — behind `trustProxy` proxies, each of which
 * appends the address it received from — the X-Forwarded-For entry `trustProxy` places from the
 * right. Entries further left were written by the client and are ignored.
 */
export function clientAddress(
  remote: string | undefined,
  forwardedFor: string | null | undefined,
  trustProxy: number,
): { address: string; id: string } {
  const peer = (remote && addressKey(remote)) ||
    { address: remote || "unknown", id: `ip:${remote || "unknown"}` };
  if (trustProxy <= 0 || !forwardedFor) return peer;
  const hops = forwardedFor.split(",").map((h) => h.trim()).filter(Boolean);
  if (!hops.length) return peer;
  const entry = hops[Math.max(0, hops.length - trustProxy)];
  return addressKey(entry) ?? peer;
}

/** Limits for a tier: unknown tiers (removed from TIERS since the key was made) count as 1. */
function tierLimits(config: Config, tier: string): Pick<Client, "multiplier" | "quota"> {
  const multiplier = config.traffic.tiers[tier] ?? 1;
  return {
    multiplier,
    quota: {
      dailyTokens: Math.floor(config.traffic.dailyTokens * multiplier),
      globalDailyTokens: config.traffic.globalDailyTokens,
    },
  };
}

/** 401 for an Authorization header that is not a live API key: never silently anonymous. */
export class InvalidApiKeyError extends AppError {
  constructor() {
    super(401, "invalid_api_key", "That API key is not valid (it may have been revoked).", {}, {
      "WWW-Authenticate": 'Bearer error="invalid_token"',
    });
  }
}

/** Who sent `req`; throws InvalidApiKeyError for a bad or revoked key. */
export async function identify(
  kv: Deno.Kv,
  config: Config,
  req: Request,
  remote: string | undefined,
): Promise<Client> {
  const auth = req.headers.get("authorization");
  if (auth === null) return anonymous(config, req, remote);
  const { address } = clientAddress(remote, req.headers.get("x-forwarded-for"), config.trustProxy);
  const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
  const record = m ? await verifyApiKey(kv, m[1]) : null;
  if (!record) throw new InvalidApiKeyError();
  return {
    id: `key:${record.id}`,
    kind: "key",
    tier: record.tier,
    keyId: record.id,
    address,
    ...tierLimits(config, record.tier),
  };
}

const CLIENT_VAR = "trafficClient";

/** The peer address Deno.serve passed to `app.fetch(req, info)`, if any. */
export function remoteAddress(c: Context): string | undefined {
  const info = c.env as { remoteAddr?: { hostname?: string } } | undefined;
  return info?.remoteAddr?.hostname;
}

/** The request's client, identified once per request and remembered on the context. */
export function clientOf(deps: { kv: Deno.Kv; config: Config }, c: Context): Promise<Client> {
  // deno-lint-ignore no-explicit-any
  const ctx = c as Context<any>;
  const known = ctx.get(CLIENT_VAR) as Promise<Client> | undefined;
  if (known) return known;
  const req = c.req.raw;
  // the common case, no Authorization header, needs no KV read
  const pending = req.headers.has("authorization")
    ? identify(deps.kv, deps.config, req, remoteAddress(c))
    : Promise.resolve(anonymous(deps.config, req, remoteAddress(c)));
  ctx.set(CLIENT_VAR, pending);
  return pending;
}

function anonymous(config: Config, req: Request, remote: string | undefined): Client {
  const { address, id } = clientAddress(remote, req.headers.get("x-forwarded-for"), config.trustProxy);
  return { id, kind: "anonymous", tier: "anonymous", address, ...tierLimits(config, "anonymous") };
}
