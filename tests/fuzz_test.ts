/**
 * Fuzzing, short form (bench/fuzz.ts is the long one: `deno task fuzz`). Generated malformed,
 * oversized and hostile requests to every JSON route, the upload route and the read routes of an
 * in-process app: no 5xx, no hang, no unhandled rejection, API.md error bodies, and the data that
 * existed before unchanged. One fixed seed (a regression set) and one fresh seed per run; a
 * failure names the seed and case: `FUZZ_SEED=S FUZZ_CASE=I deno task fuzz` replays it.
 */
import assert from "node:assert/strict";
import { createExisting, FUZZ_ENV, fuzzGitHub, type FuzzTarget, runFuzz } from "../bench/fuzz.ts";
import { seedFrom } from "../bench/loadtest_rng.ts";
import { startTestApp } from "./helpers.ts";

const FIXED_SEED = 1;
const CASES = 2000;

async function fuzzApp() {
  const github = await fuzzGitHub();
  const app = await startTestApp({
    env: { ...FUZZ_ENV, GITHUB_API_URL: github.apiUrl, GITHUB_CODELOAD_URL: github.codeloadUrl },
  });
  const target: FuzzTarget = {
    kv: app.deps.kv,
    fetch: (req) => {
      const url = new URL(req.url);
      return app.fetch(url.pathname + url.search, req);
    },
  };
  return {
    app,
    target,
    async close() {
      await app.close();
      await github.close();
    },
  };
}

for (
  const [label, seed] of [["a fixed seed", FIXED_SEED], ["a fresh seed", seedFrom("FUZZ_SEED")]] as const
) {
  Deno.test(`fuzz (${label}, ${seed}): ${CASES} hostile requests, no 5xx, no crash, existing data unchanged`, async () => {
    const { app, target, close } = await fuzzApp();
    try {
      const existing = await createExisting((path, init) => app.json(path, init));
      const report = await runFuzz(target, existing, {
        seed,
        to: CASES,
        uploadMax: Number(FUZZ_ENV.UPLOAD_MAX_BYTES),
      });
      assert.deepEqual(
        report.problems,
        [],
        `seed ${seed}: replay with FUZZ_SEED=${seed} FUZZ_CASE=<case> deno task fuzz`,
      );
      const answered = Object.entries(report.statuses).filter(([s]) => Number(s) > 0)
        .reduce((n, [, c]) => n + c, 0);
      assert.ok(answered > CASES * 0.9, `only ${answered} of ${CASES} cases were sent`);
      assert.ok((report.statuses[200] ?? 0) > 0 && (report.statuses[400] ?? 0) > 0, "a mix of answers");
    } finally {
      await close();
    }
  });
}

Deno.test("fuzz regressions: inputs that once broke the app", async (t) => {
  const { app, close } = await fuzzApp();
  try {
    await t.step(
      "an unterminated form with a file under another field name is a 400, not a crash",
      async () => {
        const boundary = "----fuzz";
        const res = await app.json("/api/repos/upload", {
          method: "POST",
          headers: { "content-type": `multipart/form-data; boundary=${boundary}` },
          body:
            `--${boundary}\r\nContent-Disposition: form-data; name="File"; filename="a.tar.gz"\r\n\r\nbytes`,
        });
        assert.equal(res.status, 400);
        // an unheard stream error would have ended the process by now; give it the chance
        await new Promise((r) => setTimeout(r, 50));
        assert.equal((await app.json("/health")).status, 200);
      },
    );
    await t.step("a ref with a lone UTF-16 surrogate is 400 invalid_url, not a 500", async () => {
      const res = await app.json("/api/repos", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: '{"url":"acme/demo","ref":"main\\ud9db"}',
      });
      assert.equal(res.status, 400);
      assert.equal((res.body as { error: { code: string } }).error.code, "invalid_url");
    });
  } finally {
    await close();
  }
});
