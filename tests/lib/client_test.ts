import assert from "node:assert/strict";
import { createApiKey, revokeApiKey } from "../../lib/api_keys.ts";
import { addressKey, clientAddress, identify } from "../../lib/client.ts";
import { configFromEnv } from "../../lib/config.ts";
import { FakeClock } from "../helpers.ts";

Deno.test("clientAddress ignores X-Forwarded-For unless TRUST_PROXY hops are configured", async (t) => {
  await t.step("no trusted proxy: a forged header changes nothing", () => {
    assert.deepEqual(clientAddress("192.0.2.7", "1.2.3.4", 0), { address: "192.0.2.7", id: "ip:192.0.2.7" });
  });
  await t.step("one hop: the entry the proxy appended, not what the client wrote before it", () => {
    // the client sent "X-Forwarded-For: 1.2.3.4"; our proxy appended the real peer 198.51.100.9
    assert.equal(clientAddress("10.0.0.2", "1.2.3.4, 198.51.100.9", 1).id, "ip:198.51.100.9");
  });
  await t.step("two hops: the entry second from the right", () => {
    assert.equal(clientAddress("10.0.0.2", "6.6.6.6, 198.51.100.9, 10.0.0.1", 2).id, "ip:198.51.100.9");
  });
  await t.step(
    "a header shorter than the hops: its leftmost entry (all of it was written by proxies)",
    () => {
      assert.equal(clientAddress("10.0.0.2", "198.51.100.9", 3).id, "ip:198.51.100.9");
    },
  );
  await t.step("no header or garbage where the proxy's entry should be: the peer", () => {
    assert.equal(clientAddress("10.0.0.2", null, 1).id, "ip:10.0.0.2");
    assert.equal(clientAddress("10.0.0.2", "1.2.3.4, unknown", 1).id, "ip:10.0.0.2");
  });
  await t.step("fresh forged addresses never buy a fresh limit behind one proxy", () => {
    const ids = new Set(
      Array.from({ length: 50 }, (_, i) => clientAddress("10.0.0.2", `9.9.9.${i}, 198.51.100.9`, 1).id),
    );
    assert.deepEqual([...ids], ["ip:198.51.100.9"]);
  });
});

Deno.test("addressKey groups IPv6 by /64 and unwraps IPv4-mapped addresses", () => {
  assert.equal(addressKey("2001:db8:1:2:aaaa::1")?.id, "ip6:2001:db8:1:2::/64");
  assert.equal(addressKey("2001:db8:1:2:ffff:1:2:3")?.id, "ip6:2001:db8:1:2::/64");
  assert.equal(addressKey("[2001:db8:1:2::9]:443")?.id, "ip6:2001:db8:1:2::/64");
  assert.equal(addressKey("::ffff:192.0.2.1")?.id, "ip:192.0.2.1");
  assert.equal(addressKey("192.0.2.1:5555")?.id, "ip:192.0.2.1");
  assert.equal(addressKey("::1")?.id, "ip6:0:0:0:0::/64");
  for (const bad of ["", "unknown", "1.2.3", "256.1.1.1", "1::2::3", "12345::", "g::1"]) {
    assert.equal(addressKey(bad), null, bad);
  }
});

Deno.test("identify: anonymous by address, a live key by its id and tier, a bad or revoked key is 401", async () => {
  const kv = await Deno.openKv(":memory:");
  const clock = new FakeClock();
  const config = configFromEnv({ TIERS: "pro=10", QUOTA_DAILY_TOKENS: "1000" });
  const req = (auth?: string) => new Request("http://x/", { headers: auth ? { authorization: auth } : {} });
  try {
    const anon = await identify(kv, config, req(), "192.0.2.1");
    assert.equal(anon.id, "ip:192.0.2.1");
    assert.equal(anon.kind, "anonymous");
    assert.equal(anon.quota.dailyTokens, 1000);

    const { secret, record } = await createApiKey(kv, clock, { name: "ci", tier: "pro" });
    const keyed = await identify(kv, config, req(`Bearer ${secret}`), "192.0.2.1");
    assert.deepEqual(
      {
        id: keyed.id,
        kind: keyed.kind,
        tier: keyed.tier,
        multiplier: keyed.multiplier,
        quota: keyed.quota.dailyTokens,
      },
      { id: `key:${record.id}`, kind: "key", tier: "pro", multiplier: 10, quota: 10_000 },
    );

    for (const auth of ["Bearer rk_nope", `Bearer ${secret.slice(0, -1)}x`, "Basic abc", "Bearer"]) {
      await assert.rejects(identify(kv, config, req(auth), "192.0.2.1"), {
        status: 401,
        code: "invalid_api_key",
      });
    }
    await revokeApiKey(kv, clock, record.id);
    await assert.rejects(identify(kv, config, req(`Bearer ${secret}`), "192.0.2.1"), {
      status: 401,
      code: "invalid_api_key",
    });
  } finally {
    kv.close();
  }
});
