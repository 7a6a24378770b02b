/**
 * Traffic control through the whole app: rate-limit policies and their headers, who the client
 * is (forged X-Forwarded-For, API keys), stream and ingest caps, load shedding, /api/usage,
 * admin protection, /health, /metrics, logs, security headers and CORS.
 */
import assert from "node:assert/strict";
import { streamCapsFor } from "../../lib/caps.ts";
import { createLogger } from "../../lib/log.ts";
import { reserveTokens } from "../../lib/quota.ts";
import { type CircuitState, Shedder, useShedder } from "../../lib/shedding.ts";
import { CONTENT_SECURITY_POLICY } from "../../routes/middleware.ts";
import { createApp } from "../../routes/mod.ts";
import { startFakeGitHub } from "../fakes/github.ts";
import { postJson, startTestApp, type TestApp, waitFor, waitForJob } from "../helpers.ts";
import { SAMPLE_REPO, uploadRepo } from "../model_fixtures.ts";

type ErrorBody = { error: { code: string; message: string; [k: string]: unknown } };

async function status(res: Promise<Response>): Promise<Response> {
  const r = await res;
  await r.body?.cancel();
  return r;
}

function chat(question = "What does parseWidget do?"): RequestInit {
  return postJson({ messages: [{ role: "user", content: question }] });
}

Deno.test("traffic: each policy limits its route group, with RateLimit headers and 429 + Retry-After", async (t) => {
  const app = await startTestApp({
    env: { RATE_LIMITS: "read=3/1m,ingest=2/1h,generate=2/1h,chat=2/1h" },
  });
  try {
    // the upload is the first of the 2 ingest requests
    const repoId = await uploadRepo(app);
    const cases: [string, string, () => Promise<Response>, number][] = [
      ["read", "GET /api/repos/:id", () => app.fetch(`/api/repos/${repoId}`), 3],
      ["ingest", "POST /api/repos/upload", () => app.fetch("/api/repos/upload", { method: "POST" }), 1],
      [
        "generate",
        "POST /api/repos/:id/artifacts",
        () => app.fetch(`/api/repos/${repoId}/artifacts`, postJson({ kind: "overview" })),
        2,
      ],
      ["chat", "POST /api/repos/:id/chat", () => app.fetch(`/api/repos/${repoId}/chat`, chat()), 2],
    ];
    for (const [policy, route, send, allowed] of cases) {
      await t.step(`${policy}: ${route}`, async () => {
        const windowSeconds = policy === "read" ? 60 : 3600;
        const limit = policy === "read" ? 3 : 2;
        for (let i = 0; i < allowed; i++) {
          const res = await status(send());
          assert.notEqual(res.status, 429, `request ${i + 1} of ${allowed}`);
          assert.equal(res.headers.get("ratelimit-policy"), `"${policy}";q=${limit};w=${windowSeconds}`);
          assert.match(
            res.headers.get("ratelimit")!,
            new RegExp(`^"${policy}";r=${allowed - i - 1};t=\\d+$`),
          );
        }
        const refused = await send();
        assert.equal(refused.status, 429);
        const body = await refused.json() as ErrorBody;
        assert.equal(body.error.code, "rate_limited");
        assert.equal(body.error.policy, policy);
        const retryAfter = Number(refused.headers.get("retry-after"));
        assert.ok(retryAfter >= 1 && retryAfter <= windowSeconds);
        assert.match(refused.headers.get("ratelimit")!, new RegExp(`^"${policy}";r=0;t=${retryAfter}$`));
      });
    }
    await t.step("routes outside the groups are not limited", async () => {
      for (let i = 0; i < 5; i++) assert.equal((await status(app.fetch("/health"))).status, 200);
      assert.equal((await status(app.fetch("/health"))).headers.get("ratelimit"), null);
    });
    await t.step("another client still has its full allowance", async () => {
      const res = await status(app.fetch(`/api/repos/${repoId}`, {}, "198.51.100.20"));
      assert.equal(res.status, 200);
      assert.match(res.headers.get("ratelimit")!, /r=2;/);
    });
  } finally {
    await app.close();
  }
});

Deno.test("traffic: a forged X-Forwarded-For never buys a fresh limit", async (t) => {
  await t.step("TRUST_PROXY=0: the header is ignored", async () => {
    const app = await startTestApp({ env: { RATE_LIMITS: "read=2/1m" } });
    try {
      const codes = [];
      for (let i = 0; i < 6; i++) {
        codes.push(
          (await status(app.fetch("/api/usage", { headers: { "x-forwarded-for": `10.9.9.${i}` } }))).status,
        );
      }
      assert.deepEqual(codes, [200, 200, 429, 429, 429, 429]);
    } finally {
      await app.close();
    }
  });
  await t.step("TRUST_PROXY=1: only the entry our proxy appended counts", async () => {
    const app = await startTestApp({ env: { RATE_LIMITS: "read=2/1m", TRUST_PROXY: "1" } });
    try {
      const codes = [];
      for (let i = 0; i < 4; i++) {
        const forged = { "x-forwarded-for": `10.9.9.${i}, 203.0.113.5` };
        codes.push((await status(app.fetch("/api/usage", { headers: forged }, "10.0.0.1"))).status);
      }
      assert.deepEqual(codes, [200, 200, 429, 429]);
      const other = await status(
        app.fetch("/api/usage", { headers: { "x-forwarded-for": "203.0.113.6" } }, "10.0.0.1"),
      );
      assert.equal(other.status, 200, "a different real client behind the same proxy");
    } finally {
      await app.close();
    }
  });
});

Deno.test("traffic: API keys — admin creates, tier multiplies limits, bad and revoked keys are 401", async (t) => {
  const admin = { authorization: "Bearer admin-secret-token" };
  const app = await startTestApp({
    env: { RATE_LIMITS: "read=2/1m", TIERS: "pro=3", ADMIN_TOKEN: "admin-secret-token" },
  });
  try {
    let key = "";
    let keyId = "";
    await t.step("POST /admin/keys shows the secret once; the list never does", async () => {
      const created = await app.json<{ key: string; apiKey: { id: string; tier: string; prefix: string } }>(
        "/admin/keys",
        {
          ...postJson({ name: "ci", tier: "pro" }),
          headers: { ...admin, "content-type": "application/json" },
        },
      );
      assert.equal(created.status, 201);
      key = created.body.key;
      keyId = created.body.apiKey.id;
      assert.match(key, /^rk_/);
      const list = await app.fetch("/admin/keys", { headers: admin });
      const text = await list.text();
      assert.ok(text.includes(keyId) && !text.includes(key.slice(7)));
      const badTier = await app.json<ErrorBody>("/admin/keys", {
        ...postJson({ name: "x", tier: "platinum" }),
        headers: { ...admin, "content-type": "application/json" },
      });
      assert.equal(badTier.body.error.code, "invalid_tier");
    });
    await t.step("the key's tier multiplies its limit and it has its own counter", async () => {
      const auth = { authorization: `Bearer ${key}` };
      const usage = await app.json<
        { client: { kind: string; tier: string }; limits: { read: { limit: number } } }
      >(
        "/api/usage",
        { headers: auth },
      );
      assert.deepEqual(usage.body.client, { kind: "key", tier: "pro" });
      assert.equal(usage.body.limits.read.limit, 6);
      const codes = [];
      for (let i = 0; i < 6; i++) {
        codes.push((await status(app.fetch("/api/usage", { headers: auth }))).status);
      }
      assert.deepEqual(codes, [200, 200, 200, 200, 200, 429]);
      assert.equal((await status(app.fetch("/api/usage"))).status, 200, "anonymous from the same address");
    });
    await t.step("a bad key is 401 invalid_api_key, never anonymous", async () => {
      for (const value of ["Bearer rk_wrong", `Bearer ${key}x`, "Basic dXNlcjpwYXNz"]) {
        const res = await app.json<ErrorBody>("/api/usage", { headers: { authorization: value } });
        assert.equal(res.status, 401);
        assert.equal(res.body.error.code, "invalid_api_key");
      }
    });
    await t.step("DELETE /admin/keys/:id revokes: the key is 401 from then on", async () => {
      const revoked = await app.json<{ apiKey: { revokedAt?: string } }>(`/admin/keys/${keyId}`, {
        method: "DELETE",
        headers: admin,
      });
      assert.equal(revoked.status, 200);
      assert.ok(revoked.body.apiKey.revokedAt);
      const res = await app.json<ErrorBody>("/api/usage", { headers: { authorization: `Bearer ${key}` } });
      assert.equal(res.status, 401);
      assert.equal(res.body.error.code, "invalid_api_key");
      assert.equal(
        (await status(app.fetch("/admin/keys/nope", { method: "DELETE", headers: admin }))).status,
        404,
      );
    });
  } finally {
    await app.close();
  }
});

Deno.test("traffic: admin routes and /metrics are protected by ADMIN_TOKEN", async (t) => {
  await t.step("with ADMIN_TOKEN: missing or wrong token is 401, the right one passes", async () => {
    const app = await startTestApp({ env: { ADMIN_TOKEN: "right-token" } });
    try {
      for (const path of ["/admin/keys", "/metrics"]) {
        const attempts: Record<string, string>[] = [
          {},
          { authorization: "Bearer wrong-token" },
          { authorization: "right-token" },
        ];
        for (const headers of attempts) {
          const res = await app.json<ErrorBody>(path, { headers });
          assert.equal(res.status, 401, `${path} ${JSON.stringify(headers)}`);
          assert.equal(res.body.error.code, "unauthorized");
        }
        const ok = await status(app.fetch(path, { headers: { authorization: "Bearer right-token" } }));
        assert.equal(ok.status, 200, path);
      }
    } finally {
      await app.close();
    }
  });
  await t.step("without ADMIN_TOKEN: /metrics is open (API.md), the admin API is off", async () => {
    const app = await startTestApp();
    try {
      assert.equal((await status(app.fetch("/metrics"))).status, 200);
      const res = await app.json<ErrorBody>("/admin/keys");
      assert.equal(res.status, 403);
      assert.equal(res.body.error.code, "admin_disabled");
    } finally {
      await app.close();
    }
  });
});

Deno.test("traffic: GET /api/usage shows the caller's limits and token quota", async () => {
  const app = await startTestApp({
    env: { RATE_LIMITS: "read=10/1m,chat=7/1h", QUOTA_DAILY_TOKENS: "5000" },
  });
  try {
    await status(app.fetch("/api/usage", {}, "192.0.2.44"));
    await reserveTokens(app.deps.kv, app.deps.clock, {
      id: "ip:192.0.2.44",
      quota: { dailyTokens: 5000, globalDailyTokens: 0 },
    }, 1200);
    const { status: code, body } = await app.json<Record<string, Record<string, unknown>>>(
      "/api/usage",
      {},
      "192.0.2.44",
    );
    assert.equal(code, 200);
    assert.deepEqual(body.client, { kind: "anonymous", tier: "anonymous" });
    assert.deepEqual(Object.keys(body.limits), ["read", "ingest", "generate", "chat"]);
    const read = body.limits.read as Record<string, number>;
    assert.deepEqual([read.limit, read.windowSeconds, read.remaining], [10, 60, 8]);
    assert.ok(read.resetSeconds >= 1 && read.resetSeconds <= 60);
    assert.deepEqual((body.limits.chat as Record<string, number>).remaining, 7);
    assert.equal(body.quota.tokensUsed, 1200);
    assert.equal(body.quota.tokensLimit, 5000);
    assert.match(body.quota.resetsAt as string, /^\d{4}-\d\d-\d\dT00:00:00\.000Z$/);
  } finally {
    await app.close();
  }
});

Deno.test("traffic: open SSE streams are capped per client and freed when the client leaves", async () => {
  const app = await startTestApp({
    env: { MAX_STREAMS_PER_CLIENT: "2", MAX_STREAMS_PER_PROCESS: "3" },
    startWorker: false,
  });
  try {
    // an error answer (unknown job) takes no slot
    for (let i = 0; i < 5; i++) {
      assert.equal((await status(app.fetch("/api/jobs/nope/events", {}, "192.0.2.9"))).status, 404);
    }
    assert.equal(streamCapsFor(app.deps).open, 0);
    // a queued job that never runs: its event stream stays open
    const { job } = (await app.deps.jobs.create({ type: "ingest", subject: {}, payload: {} }))!;
    const open = async (from: string) => {
      const res = await app.fetch(`/api/jobs/${job.id}/events`, {}, from);
      assert.equal(res.status, 200);
      const reader = res.body!.getReader();
      await reader.read();
      return reader;
    };
    const a1 = await open("192.0.2.1");
    const a2 = await open("192.0.2.1");
    const third = await app.json<ErrorBody>(`/api/jobs/${job.id}/events`, {}, "192.0.2.1");
    assert.equal(third.status, 429);
    assert.equal(third.body.error.code, "too_many_streams");
    assert.ok(Number(third.res.headers.get("retry-after")) >= 1);
    const b1 = await open("192.0.2.2");
    const full = await app.json<ErrorBody>(`/api/jobs/${job.id}/events`, {}, "192.0.2.3");
    assert.equal(full.status, 503);
    assert.equal(full.body.error.code, "overloaded");
    await a1.cancel();
    const a3 = await open("192.0.2.1");
    assert.equal(streamCapsFor(app.deps).open, 3);
    for (const r of [a2, b1, a3]) await r.cancel();
    assert.equal(streamCapsFor(app.deps).open, 0);
    await open("192.0.2.3").then((r) => r.cancel());
  } finally {
    await app.close();
  }
});

Deno.test("traffic: running ingests are capped per client; the slot frees when the job ends", async () => {
  const github = await startFakeGitHub();
  for (const name of ["one", "two", "three", "four"]) {
    github.addRepo({ owner: "acme", name, archive: SAMPLE_REPO });
  }
  const app = await startTestApp({
    env: {
      MAX_INGESTS_PER_CLIENT: "1",
      GITHUB_API_URL: github.apiUrl,
      GITHUB_CODELOAD_URL: github.codeloadUrl,
    },
    startWorker: false,
  });
  try {
    const first = await app.json<{ job: { id: string } }>("/api/repos", postJson({ url: "acme/one" }));
    assert.equal(first.status, 202);
    const second = await app.json<ErrorBody>("/api/repos", postJson({ url: "acme/two" }));
    assert.equal(second.status, 429);
    assert.equal(second.body.error.code, "too_many_ingests");
    assert.ok(Number(second.res.headers.get("retry-after")) >= 1);
    const elsewhere = await app.json("/api/repos", postJson({ url: "acme/two" }), "198.51.100.7");
    assert.equal(elsewhere.status, 202, "another client is not affected");
    const bad = await app.json<ErrorBody>("/api/repos", postJson({ url: "not a url" }), "198.51.100.8");
    assert.equal(bad.status, 400);
    const afterBad = await app.json("/api/repos", postJson({ url: "acme/three" }), "198.51.100.8");
    assert.equal(afterBad.status, 202, "a refused request does not keep its slot");
    app.worker.start();
    assert.equal((await waitForJob(app, first.body.job.id)).status, "succeeded");
    const third = await app.json("/api/repos", postJson({ url: "acme/four" }));
    assert.equal(third.status, 202);
  } finally {
    await app.close();
    await github.close();
  }
});

Deno.test("traffic: only a request that starts an ingest takes a slot; joins and ingested repos pass a full cap", async (t) => {
  const github = await startFakeGitHub();
  for (const name of ["same", "one", "two", "new"]) {
    github.addRepo({ owner: "acme", name, archive: SAMPLE_REPO });
  }
  const cap = 2;
  const app = await startTestApp({
    env: {
      MAX_INGESTS_PER_CLIENT: String(cap),
      GITHUB_API_URL: github.apiUrl,
      GITHUB_CODELOAD_URL: github.codeloadUrl,
    },
    startWorker: false,
  });
  type Ingest = { repo: { status: string }; job: { id: string } };
  const ingest = (url: string, exclude?: string[]) =>
    app.json<Ingest & ErrorBody>("/api/repos", postJson({ url, exclude }));
  const run = async (jobId: string) => {
    await app.worker.tryRun(jobId);
    assert.equal((await waitForJob(app, jobId)).status, "succeeded");
  };
  try {
    await t.step(
      `${cap + 2} simultaneous identical requests from one client get one job, all 202`,
      async () => {
        const answers = await Promise.all(
          Array.from({ length: cap + 2 }, () => ingest("acme/same", ["zzz"])),
        );
        assert.deepEqual(answers.map((a) => a.status), Array(cap + 2).fill(202));
        assert.equal(new Set(answers.map((a) => a.body.job.id)).size, 1);
        await run(answers[0].body.job.id);
        assert.equal(github.requests.downloads, 1);
      },
    );
    await t.step(
      "with the cap full: a join gets 202 and its job, an ingested repo 200, a new ingest 429",
      async () => {
        const running: string[] = [];
        for (const name of ["one", "two"]) {
          const started = await ingest(`acme/${name}`);
          assert.equal(started.status, 202);
          running.push(started.body.job.id);
        }
        const joined = await ingest("acme/one");
        assert.equal(joined.status, 202);
        assert.equal(joined.body.job.id, running[0]);
        const ready = await ingest("acme/same", ["zzz"]);
        assert.equal(ready.status, 200);
        assert.equal(ready.body.repo.status, "ready");
        const refused = await ingest("acme/new");
        assert.equal(refused.status, 429);
        assert.equal(refused.body.error.code, "too_many_ingests");
        await run(running[0]);
        assert.equal((await ingest("acme/new")).status, 202, "the join held no slot of its own");
      },
    );
  } finally {
    await app.close();
    await github.close();
  }
});

Deno.test("traffic: shedding refuses new optional kinds with 503 while overview, chat and finished artifacts work", async () => {
  const app = await startTestApp();
  const load = { depth: 0, circuit: "closed" as CircuitState };
  useShedder(
    app.deps,
    new Shedder(
      {
        queue: () => Promise.resolve({ depth: load.depth, oldestAgeSeconds: 0 }),
        loopDelayMs: () => 0,
        circuit: () => Promise.resolve(load.circuit),
      },
      { shedQueueDepth: 10, shedQueueAgeMs: 0, shedLoopDelayMs: 0, shedOnCircuit: true },
      0,
    ),
  );
  try {
    const repoId = await uploadRepo(app);
    const ask = (kind: string, extra: Record<string, unknown> = {}) =>
      app.json<ErrorBody & { artifact: { id: string; status: string } }>(
        `/api/repos/${repoId}/artifacts`,
        postJson({ kind, ...extra }),
      );
    const slides = await ask("slides");
    await waitFor(async () => (await ask("slides")).body.artifact?.status === "done", 10_000, "slides");
    load.depth = 25;
    for (
      const [kind, extra] of [["podcast", {}], ["concepts", { concept: "parsing" }], ["slides", {
        expertise: "expert",
      }]] as const
    ) {
      const res = await ask(kind, extra);
      assert.equal(res.status, 503, kind);
      assert.equal(res.body.error.code, "overloaded");
      assert.ok(Number(res.res.headers.get("retry-after")) >= 1);
    }
    const audio = await app.json<ErrorBody>(`/api/artifacts/${slides.body.artifact.id}/audio`);
    assert.equal(audio.status, 503);
    assert.equal((await ask("slides")).status, 200, "finished slides are still served");
    assert.equal((await status(app.fetch(`/api/artifacts/${slides.body.artifact.id}`))).status, 200);
    assert.ok([200, 202].includes((await ask("overview")).status), "overview still works");
    const answer = await app.fetch(`/api/repos/${repoId}/chat`, chat());
    assert.equal(answer.status, 200);
    assert.match(await answer.text(), /event: done/);
    const health = await app.json<{ status: string; shedding: { kind: string; reason: string }[] }>(
      "/health",
    );
    assert.equal(health.body.status, "degraded");
    assert.deepEqual(health.body.shedding.map((s) => s.kind), ["podcast", "slides", "concepts", "audio"]);
    assert.match(health.body.shedding[0].reason, /queue depth 25 >= 10/);
    load.depth = 0;
    load.circuit = "open";
    assert.equal((await ask("podcast")).status, 503);
    assert.match(
      (await app.json<{ shedding: { reason: string }[] }>("/health")).body.shedding[0].reason,
      /circuit open/,
    );
    load.circuit = "closed";
    assert.equal((await ask("podcast")).status, 202);
    assert.deepEqual((await app.json<{ shedding: unknown[] }>("/health")).body.shedding, []);
  } finally {
    await app.close();
  }
});

Deno.test("traffic: while shedding, a chunked artifact request body is read only up to its limit (413), not buffered whole", async () => {
  const app = await startTestApp({ startWorker: false });
  useShedder(
    app.deps,
    new Shedder(
      {
        queue: () => Promise.resolve({ depth: 25, oldestAgeSeconds: 0 }),
        loopDelayMs: () => 0,
        circuit: () => Promise.resolve("closed" as CircuitState),
      },
      { shedQueueDepth: 10, shedQueueAgeMs: 0, shedLoopDelayMs: 0, shedOnCircuit: false },
      0,
    ),
  );
  try {
    // 4 MiB in 1 KiB chunks, with no Content-Length
    const chunks = 4096;
    let pulls = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (++pulls > chunks) controller.close();
        else controller.enqueue(new Uint8Array(1024).fill(0x20));
      },
    }, { highWaterMark: 0 });
    const res = await app.json<ErrorBody>("/api/repos/AAAAAAAAAAAAAAAAAAAAAA/artifacts", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    assert.equal(res.status, 413);
    assert.equal(res.body.error.code, "body_too_large");
    assert.ok(pulls < 64, `read ${pulls} of ${chunks} chunks`);
  } finally {
    await app.close();
  }
});

/** Parses Prometheus text into `name{labels}` → value, checking every line's syntax. */
export function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  const types = new Set<string>();
  for (const line of text.split("\n")) {
    if (!line) continue;
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      types.add(type[1]);
      continue;
    }
    if (line.startsWith("# HELP ")) continue;
    const m =
      /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+-]+|NaN|[+-]Inf)$/
        .exec(line);
    assert.ok(m, `not a Prometheus sample line: ${line}`);
    assert.ok(types.has(m[1].replace(/_(bucket|sum|count)$/, "")) || types.has(m[1]), `no TYPE for ${m[1]}`);
    out.set(`${m[1]}${m[2] ?? ""}`, Number(m[3]));
  }
  return out;
}

async function scrape(app: TestApp): Promise<Map<string, number>> {
  const res = await app.fetch("/metrics");
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
  return parseMetrics(await res.text());
}

Deno.test("traffic: /metrics is valid Prometheus text whose named series are present and move", async () => {
  const app = await startTestApp({ env: { RATE_LIMITS: "read=3/1m" } });
  try {
    const before = await scrape(app);
    const repoId = await uploadRepo(app);
    for (let i = 0; i < 4; i++) await status(app.fetch(`/api/repos/${repoId}`));
    const { body } = await app.json<{ artifact: { id: string }; job: { id: string } }>(
      `/api/repos/${repoId}/artifacts`,
      postJson({ kind: "overview" }),
    );
    // (not waitForJob: its GETs would be rate-limited here)
    await waitFor(
      async () => (await app.deps.jobs.get(body.job.id))?.status === "succeeded",
      20_000,
      "the job",
    );
    const after = await scrape(app);
    const v = (m: Map<string, number>, k: string) => m.get(k) ?? 0;
    const moved = (k: string, by = 1) => assert.ok(v(after, k) - v(before, k) >= by, `${k} did not move`);
    moved('repolm_http_requests_total{route="/api/repos/:repoId",method="GET",status="200"}', 3);
    moved('repolm_http_requests_total{route="/api/repos/:repoId",method="GET",status="429"}', 1);
    moved('repolm_http_request_duration_seconds_count{route="/api/repos/:repoId",method="GET"}', 4);
    moved(
      'repolm_http_request_duration_seconds_bucket{route="/api/repos/:repoId",method="GET",le="+Inf"}',
      4,
    );
    moved('repolm_rate_limited_total{policy="read"}');
    moved('repolm_jobs_total{type="generate",outcome="succeeded"}');
    moved('repolm_job_duration_seconds_count{type="generate",outcome="succeeded"}');
    moved('repolm_kv_latency_seconds_count{op="rate_limit"}');
    for (
      const name of [
        "repolm_queue_depth",
        "repolm_queue_oldest_age_seconds",
        'repolm_circuit_state{state="closed"}',
        "repolm_open_streams",
        'repolm_process_memory_bytes{kind="rss"}',
        "repolm_event_loop_delay_seconds",
        'repolm_shedding{kind="podcast"}',
      ]
    ) assert.ok(after.has(name), `${name} missing`);
    assert.equal(after.get('repolm_circuit_state{state="closed"}'), 1);
    assert.ok(after.get('repolm_process_memory_bytes{kind="rss"}')! > 1_000_000);
    const text = await (await app.fetch("/metrics")).text();
    for (
      const name of [
        "repolm_model_calls_total",
        "repolm_model_tokens_total",
        "repolm_model_errors_total",
        "repolm_shed_total",
      ]
    ) {
      assert.match(text, new RegExp(`^# TYPE ${name} counter$`, "m"));
    }
  } finally {
    await app.close();
  }
});

Deno.test("traffic: one JSON log line per request, with the request id and no secrets", async () => {
  const app = await startTestApp({ env: { ADMIN_TOKEN: "log-secret-token" } });
  const lines: string[] = [];
  app.deps.log = createLogger("info", (line) => lines.push(line));
  try {
    await status(app.fetch("/api/repos/nope?token=abc", {
      headers: { "x-request-id": "req-123", authorization: "Bearer rk_zzz" },
    }));
    await status(app.fetch("/metrics", { headers: { authorization: "Bearer log-secret-token" } }));
    const entries = lines.map((l) => JSON.parse(l)).filter((e) => e.msg === "request");
    assert.equal(entries.length, 2);
    assert.deepEqual(
      {
        requestId: entries[0].requestId,
        status: entries[0].status,
        route: entries[0].route,
        path: entries[0].path,
      },
      { requestId: "req-123", status: 401, route: "/api/repos/:repoId", path: "/api/repos/nope" },
    );
    assert.ok(typeof entries[0].ms === "number");
    const all = lines.join("\n");
    for (const secret of ["rk_zzz", "log-secret-token", "token=abc"]) {
      assert.ok(!all.includes(secret), secret);
    }
  } finally {
    await app.close();
  }
});

Deno.test("traffic: security headers on every response; CORS only for configured origins", async (t) => {
  const app = await startTestApp({ env: { CORS_ORIGINS: "https://good.example", RATE_LIMITS: "read=1/1m" } });
  try {
    await t.step(
      "JSON, 404, 429 and /health all carry CSP, nosniff, Referrer-Policy, frame-ancestors",
      async () => {
        const responses = [
          await status(app.fetch("/health")),
          await status(app.fetch("/api/usage")),
          await status(app.fetch("/api/usage")),
          await status(app.fetch("/no/such/page")),
        ];
        assert.deepEqual(responses.map((r) => r.status), [200, 200, 429, 404]);
        for (const r of responses) {
          assert.equal(r.headers.get("content-security-policy"), CONTENT_SECURITY_POLICY);
          assert.match(CONTENT_SECURITY_POLICY, /script-src 'self';/);
          assert.doesNotMatch(CONTENT_SECURITY_POLICY, /unsafe-inline|unsafe-eval/);
          assert.match(CONTENT_SECURITY_POLICY, /frame-ancestors 'none'/);
          assert.equal(r.headers.get("x-content-type-options"), "nosniff");
          assert.equal(r.headers.get("referrer-policy"), "no-referrer");
          assert.ok(r.headers.get("x-request-id"));
        }
      },
    );
    await t.step("an allowed origin gets CORS headers, with the rate-limit headers exposed", async () => {
      const res = await status(
        app.fetch("/api/usage", { headers: { origin: "https://good.example" } }, "192.0.2.80"),
      );
      assert.equal(res.headers.get("access-control-allow-origin"), "https://good.example");
      assert.match(res.headers.get("access-control-expose-headers")!, /RateLimit/);
      const preflight = await status(app.fetch("/api/repos", {
        method: "OPTIONS",
        headers: { origin: "https://good.example", "access-control-request-method": "POST" },
      }));
      assert.equal(preflight.status, 204);
      assert.equal(preflight.headers.get("access-control-allow-origin"), "https://good.example");
    });
    await t.step("any other origin gets none", async () => {
      const res = await status(
        app.fetch("/api/usage", { headers: { origin: "https://evil.example" } }, "192.0.2.81"),
      );
      assert.equal(res.headers.get("access-control-allow-origin"), null);
    });
  } finally {
    await app.close();
  }
});

Deno.test("traffic: a read run while its admission commits is dropped cleanly when another instance used the limit", async () => {
  const app = await startTestApp({ env: { RATE_LIMITS: "read=2/1m" }, startWorker: false });
  try {
    // a second instance on the same KV: its own limiter, which has never seen this client
    const other = { ...app.deps };
    const second = createApp(other);
    const info = { remoteAddr: { hostname: "192.0.2.70", port: 1, transport: "tcp" } };
    const { job } = (await app.deps.jobs.create({ type: "ingest", subject: {}, payload: {} }))!;
    for (let i = 0; i < 2; i++) {
      assert.equal((await status(app.fetch(`/api/jobs/${job.id}`, {}, "192.0.2.70"))).status, 200);
    }
    // the SSE route: the handler opens a stream before the refusal is known
    const res = await second.fetch(new Request(`http://local/api/jobs/${job.id}/events`), info);
    assert.equal(res.status, 429);
    assert.match(res.headers.get("content-type")!, /^application\/json/);
    const text = await res.text();
    assert.equal(JSON.parse(text).error.code, "rate_limited");
    assert.equal(res.headers.get("cache-control"), null, "no header of the dropped answer");
    assert.equal(streamCapsFor(other).open, 0, "the dropped stream was closed");
    // now this instance knows the client is at its limit: refused without running the handler
    const again = await second.fetch(new Request(`http://local/api/jobs/${job.id}`), info);
    assert.equal(again.status, 429);
    await again.body?.cancel();
  } finally {
    await app.close();
  }
});
