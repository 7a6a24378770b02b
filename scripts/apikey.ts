/**
 * `deno task apikey create --tier pro --name NAME | list | revoke ID` — manages API keys directly
 * in the KV that KV_PATH names (the same configuration as the app). `create` prints the key once;
 * only its hash is stored. Exit codes: 0 done, 1 not found, 2 usage or configuration error.
 */
import { createApiKey, listApiKeys, revokeApiKey } from "../lib/api_keys.ts";
import { systemClock } from "../lib/clock.ts";
import { configFromEnv } from "../lib/config.ts";

const USAGE = `usage:
  deno task apikey create --tier TIER --name NAME   prints the new key (shown only this once)
  deno task apikey list                             id, tier, name, prefix, created, revoked
  deno task apikey revoke ID                        the key answers 401 from then on`;

/** Reads `--name value` / `--name=value` flags and positional arguments. */
function parseArgs(args: string[]): { positional: string[]; flags: Record<string, string> } {
  const positional: string[] = [];
  const flags: Record<string, string> = {};
  for (let i = 0; i < args.length; i++) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(args[i]);
    if (!m) positional.push(args[i]);
    else flags[m[1]] = m[2] ?? args[++i] ?? "";
  }
  return { positional, flags };
}

/** Runs the command; returns the exit code. Output goes to `out`, problems to `err`. */
export async function run(
  args: string[],
  env: Record<string, string | undefined>,
  out: (line: string) => void = console.log,
  err: (line: string) => void = console.error,
): Promise<number> {
  const { positional: [command, ...rest], flags } = parseArgs(args);
  let config;
  try {
    config = configFromEnv(env);
  } catch (e) {
    err((e as Error).message);
    return 2;
  }
  if (!command || !["create", "list", "revoke"].includes(command)) {
    err(USAGE);
    return 2;
  }
  const tiers = Object.keys(config.traffic.tiers).filter((t) => t !== "anonymous");
  if (command === "create" && (!flags.name?.trim() || !tiers.includes(flags.tier))) {
    err(`${USAGE}\n\ntiers (from TIERS): ${tiers.join(", ")}`);
    return 2;
  }
  if (command === "revoke" && rest.length !== 1) {
    err(USAGE);
    return 2;
  }
  if (config.kvPath && config.kvPath !== ":memory:" && !config.kvPath.includes("://")) {
    const dir = config.kvPath.replace(/[^/]*$/, "");
    if (dir) await Deno.mkdir(dir, { recursive: true });
  }
  const kv = await Deno.openKv(config.kvPath);
  try {
    if (command === "create") {
      const { secret, record } = await createApiKey(kv, systemClock, {
        name: flags.name.trim(),
        tier: flags.tier,
      });
      out(secret);
      err(
        `created key ${record.id} (tier ${record.tier}, name ${record.name}); the key above is not shown again`,
      );
      return 0;
    }
    if (command === "list") {
      for (const k of await listApiKeys(kv)) {
        const revoked = k.revokedAt ? new Date(k.revokedAt).toISOString() : "-";
        out([k.id, k.tier, k.name, `${k.prefix}…`, new Date(k.createdAt).toISOString(), revoked].join("\t"));
      }
      return 0;
    }
    const record = await revokeApiKey(kv, systemClock, rest[0]);
    if (!record) {
      err(`no key with id ${rest[0]}`);
      return 1;
    }
    out(`revoked ${record.id} (${record.name})`);
    return 0;
  } finally {
    kv.close();
  }
}

if (import.meta.main) Deno.exit(await run(Deno.args, Deno.env.toObject()));
