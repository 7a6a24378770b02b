import assert from "node:assert/strict";
import { startTestApp } from "../helpers.ts";

Deno.test("onError answers a still-locked local KV file with 503 overloaded and Retry-After, not a 500", async () => {
  const app = await startTestApp({ startWorker: false });
  const kv = app.deps.kv;
  const realGet = kv.get.bind(kv);
  try {
    kv.get = (() => Promise.reject(new TypeError("database is locked"))) as typeof kv.get;
    const res = await app.json<{ error: { code: string; message: string } }>("/api/repos/someRepoId");
    assert.equal(res.status, 503);
    assert.equal(res.body.error.code, "overloaded");
    assert.equal(res.res.headers.get("retry-after"), "1");
    kv.get = realGet;
    const other = await app.json<{ error: { code: string } }>("/api/repos/someRepoId");
    assert.equal(other.status, 404, "with KV back, the same request is an ordinary 404");
  } finally {
    kv.get = realGet;
    await app.close();
  }
});
