import assert from "node:assert/strict";
import {
  createApiKey,
  hashApiKey,
  listApiKeys,
  revokeApiKey,
  secretMatches,
  verifyApiKey,
} from "../../lib/api_keys.ts";
import { FakeClock } from "../helpers.ts";

Deno.test("api keys: create, verify, list, revoke — and only the hash is stored", async (t) => {
  const kv = await Deno.openKv(":memory:");
  const clock = new FakeClock();
  try {
    const { secret, record } = await createApiKey(kv, clock, { name: "alice", tier: "pro" });

    await t.step("the secret has the documented shape and is stored nowhere", async () => {
      assert.match(secret, /^rk_[A-Za-z0-9_-]{43}$/);
      assert.equal(record.prefix, secret.slice(0, 7));
      for await (const entry of kv.list({ prefix: [] })) {
        assert.ok(!JSON.stringify(entry).includes(secret.slice(7)), `secret found under ${entry.key}`);
      }
      assert.ok((await kv.get(["apikey", await hashApiKey(secret)])).value);
    });

    await t.step("the secret verifies; near misses do not", async () => {
      assert.equal((await verifyApiKey(kv, secret))?.id, record.id);
      assert.equal(await verifyApiKey(kv, secret.slice(0, -1) + (secret.endsWith("A") ? "B" : "A")), null);
      assert.equal(await verifyApiKey(kv, "rk_short"), null);
    });

    await t.step("list shows every key, newest first", async () => {
      clock.advance(1000);
      const second = await createApiKey(kv, clock, { name: "bob", tier: "free" });
      assert.deepEqual((await listApiKeys(kv)).map((k) => k.name), ["bob", "alice"]);
      assert.equal((await verifyApiKey(kv, second.secret))?.tier, "free");
    });

    await t.step(
      "revoke: the key stops verifying, stays listed with revokedAt; twice is harmless",
      async () => {
        clock.advance(1000);
        const revoked = await revokeApiKey(kv, clock, record.id);
        assert.equal(revoked?.revokedAt, clock.now());
        assert.equal(await verifyApiKey(kv, secret), null);
        assert.equal((await revokeApiKey(kv, clock, record.id))?.revokedAt, clock.now());
        assert.equal(await revokeApiKey(kv, clock, "no-such-id"), null);
        assert.ok((await listApiKeys(kv)).find((k) => k.id === record.id)?.revokedAt);
      },
    );
  } finally {
    kv.close();
  }
});

Deno.test("secretMatches compares whole secrets, whatever their lengths", async () => {
  assert.equal(await secretMatches("s3cret-token", "s3cret-token"), true);
  assert.equal(await secretMatches("s3cret-toke", "s3cret-token"), false);
  assert.equal(await secretMatches("s3cret-token!", "s3cret-token"), false);
  assert.equal(await secretMatches("", "s3cret-token"), false);
});
