import assert from "node:assert/strict";
import { run } from "../../scripts/apikey.ts";

Deno.test("scripts/apikey.ts: create prints the key once, list shows it, revoke ends it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "repolm-apikey-" });
  const env = { KV_PATH: `${dir}/keys.kv`, TIERS: "free=2,pro=10" };
  const cli = async (...args: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await run(args, env, (l) => out.push(l), (l) => err.push(l));
    return { code, out, err };
  };
  try {
    const created = await cli("create", "--tier", "pro", "--name", "build bot");
    assert.equal(created.code, 0);
    assert.match(created.out[0], /^rk_[A-Za-z0-9_-]{43}$/);
    const id = /created key (\S+)/.exec(created.err[0])![1];

    const listed = await cli("list");
    assert.equal(listed.code, 0);
    assert.equal(listed.out.length, 1);
    const [lid, tier, name, prefix, , revoked] = listed.out[0].split("\t");
    assert.deepEqual([lid, tier, name, revoked], [id, "pro", "build bot", "-"]);
    assert.equal(prefix, `${created.out[0].slice(0, 7)}…`);
    assert.ok(!listed.out[0].includes(created.out[0].slice(7)), "the list never shows the secret");

    assert.equal((await cli("revoke", id)).code, 0);
    assert.notEqual((await cli("list")).out[0].split("\t")[5], "-");
    assert.equal((await cli("revoke", "nope")).code, 1);

    assert.equal((await cli("create", "--tier", "gold", "--name", "x")).code, 2, "unknown tier");
    assert.equal((await cli("create", "--tier", "pro")).code, 2, "no name");
    assert.equal((await cli("frobnicate")).code, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
