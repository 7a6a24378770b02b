/**
 * Repository ingestion end to end: the routes of API.md against a fake GitHub on 127.0.0.1, with the
 * real job worker, archive reader, filters and KV writes. Every scenario checks what is left in KV.
 */
import assert from "node:assert/strict";
import type { GitHubConfig } from "../../lib/github.ts";
import { keys } from "../../lib/keys.ts";
import { sweepExpiredRepos } from "../../lib/repos.ts";
import {
  buildTar,
  buildTarGz,
  buildZip,
  corrupt,
  type FixtureEntry,
  gzipBomb,
  truncate,
} from "../fakes/archives.ts";
import { type FakeGitHub, fakeSha, type RepoSpec, startFakeGitHub } from "../fakes/github.ts";
import { FakeClock, parseSse, postJson, startTestApp, type TestApp, waitFor } from "../helpers.ts";

type Repo = {
  id: string;
  status: string;
  source: Record<string, string>;
  stats: { files: number; skipped: number; bytes: number; tokens: number; languages: Record<string, number> };
  error?: { code: string; message: string };
};
type Job = {
  id: string;
  status: string;
  attempts: number;
  progress: { phase: string };
  error?: { code: string; message: string };
};
type ErrorBody = { error: { code: string; message: string } };
type Tree = {
  files: { path: string; bytes: number; tokens: number; language: string; priority: number }[];
  skipped: { path: string; reason: string }[];
};

const DEMO: FixtureEntry[] = [
  { path: "README.md", content: "# demo\n\nA tiny repository.\n" },
  { path: "package.json", content: '{ "name": "demo", "main": "src/index.ts" }\n' },
  {
    path: "src/index.ts",
    content: 'import { shout } from "./util/strings.ts";\nconsole.log(shout("hi"));\n',
  },
  { path: "src/util/strings.ts", content: "export const shout = (s: string) => s.toUpperCase();\n" },
  {
    path: "tests/strings_test.ts",
    content: 'import { shout } from "../src/util/strings.ts";\nshout("a");\n',
  },
];
const DEMO_BYTES = DEMO.reduce((n, f) => n + new TextEncoder().encode(f.content as string).length, 0);

const PNG = new Uint8Array([
  0x89,
  0x50,
  0x4e,
  0x47,
  0x0d,
  0x0a,
  0x1a,
  0x0a,
  0,
  0,
  0,
  13,
  0x49,
  0x48,
  0x44,
  0x52,
]);
const BINARY = new Uint8Array(Array.from({ length: 600 }, (_, i) => (i * 7) % 256));
const PRIVATE_KEY =
  "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n";

/** A fixture with one file for every default filter, and the reason each is skipped. */
const FILTERED: FixtureEntry[] = [
  { path: "README.md", content: "# filtered\n" },
  { path: "src/main.ts", content: "export const main = 1;\n" },
  { path: ".env.example", content: "API_KEY=\n" },
  { path: ".git/config", content: "[core]\n" },
  { path: "node_modules/left-pad/index.js", content: "module.exports = 1;\n" },
  { path: "dist/bundle.js", content: "var a=1;\n" },
  { path: "web/app.min.js", content: "var a=1;\n" },
  { path: "package-lock.json", content: "{}\n" },
  { path: "notes.txt", content: BINARY },
  { path: "logo.png", content: PNG },
  { path: ".env", content: "API_KEY=sk-live-123\n" },
  { path: "deploy/id_rsa", content: "not really a key\n" },
  { path: "config/key.txt", content: `here it is\n${PRIVATE_KEY}` },
  { path: "link-out", type: "symlink", linkTarget: "../../../etc/passwd" },
  { path: "src/big.ts", content: "x".repeat(5000) },
];
const FILTERED_SKIPS: Record<string, string> = {
  ".git/config": "ignored",
  "node_modules/left-pad/index.js": "vendored",
  "dist/bundle.js": "ignored",
  "web/app.min.js": "ignored",
  "package-lock.json": "ignored",
  "notes.txt": "binary",
  "logo.png": "binary",
  ".env": "secret",
  "deploy/id_rsa": "secret",
  "config/key.txt": "secret",
  "link-out": "symlink",
  "src/big.ts": "too_large",
};

// --- helpers -------------------------------------------------------------------------------------

/** Starts a fake GitHub with the given repos; `fn` runs with it and it is closed afterwards. */
async function withGitHub(repos: RepoSpec[], fn: (github: FakeGitHub) => Promise<void>): Promise<void> {
  const github = await startFakeGitHub();
  for (const spec of repos) github.addRepo(spec);
  try {
    await fn(github);
  } finally {
    await github.close();
  }
}

/** Starts the app wired to `github`; `fn` runs with it and it is closed afterwards. */
async function withApp(
  github: FakeGitHub,
  env: Record<string, string>,
  fn: (app: TestApp) => Promise<void>,
): Promise<void> {
  const app = await startTestApp({
    env: { GITHUB_API_URL: github.apiUrl, GITHUB_CODELOAD_URL: github.codeloadUrl, ...env },
  });
  try {
    await fn(app);
  } finally {
    await app.close();
  }
}

/** Waits for a job to end and returns it. */
async function jobEnd(app: TestApp, jobId: string): Promise<Job> {
  return await waitFor(
    async () => {
      const { body } = await app.json<Job>(`/api/jobs/${jobId}`);
      return ["succeeded", "failed", "canceled"].includes(body.status) ? body : null;
    },
    15_000,
    `job ${jobId}`,
  );
}

/** POSTs an ingest that must start a job, waits for the job, and returns the repo as GET shows it. */
async function ingest(app: TestApp, body: Record<string, unknown>): Promise<{ repo: Repo; job: Job }> {
  const res = await app.json<{ repo: Repo; job: Job } & ErrorBody>("/api/repos", postJson(body));
  assert.equal(res.status, 202, JSON.stringify(res.body));
  assert.equal(res.body.repo.status, "ingesting");
  const job = await jobEnd(app, res.body.job.id);
  const repo = await app.json<Repo>(`/api/repos/${res.body.repo.id}`);
  assert.equal(repo.status, 200);
  return { repo: repo.body, job };
}

/** Ingests and asserts the job succeeded and the repo is ready. */
async function ingestReady(app: TestApp, body: Record<string, unknown>): Promise<Repo> {
  const { repo, job } = await ingest(app, body);
  assert.equal(job.status, "succeeded", JSON.stringify(job.error));
  assert.equal(repo.status, "ready");
  return repo;
}

/** Ingests and asserts the job failed with `code`, leaving no data and no ready repo. */
async function ingestFails(app: TestApp, body: Record<string, unknown>, code: string): Promise<Job> {
  const { repo, job } = await ingest(app, body);
  assert.equal(job.status, "failed");
  assert.equal(job.error?.code, code, JSON.stringify(job.error));
  assert.equal(repo.status, "failed");
  assert.equal(repo.error?.code, code);
  assert.equal(await countKeys(app, ["repo_data", repo.id]), 0, "the failed repo's data is left behind");
  await assertError(app.fetch(`/api/repos/${repo.id}/tree`), 404, "repo_failed");
  return job;
}

async function tree(app: TestApp, repoId: string): Promise<Tree> {
  const res = await app.json<Tree>(`/api/repos/${repoId}/tree`);
  assert.equal(res.status, 200);
  return res.body;
}

/** The stored paths, in code-point order. */
function paths(t: Tree): string[] {
  return t.files.map((f) => f.path).sort();
}

function skipReasons(t: Tree): Record<string, string> {
  return Object.fromEntries(t.skipped.map((s) => [s.path, s.reason]));
}

async function countKeys(app: TestApp, prefix: Deno.KvKey): Promise<number> {
  let n = 0;
  for await (const _ of app.deps.kv.list({ prefix })) n++;
  return n;
}

/** No file, tree or index data in KV, no upload marker, and no repo that is ready. */
async function assertNothingStored(app: TestApp): Promise<void> {
  assert.equal(await countKeys(app, ["repo_data"]), 0, "repo_data keys left behind");
  assert.equal(await countKeys(app, keys.uploadPendingPrefix()), 0, "upload marker left behind");
  for await (const e of app.deps.kv.list<{ status: string }>({ prefix: ["repo"] })) {
    assert.notEqual(e.value.status, "ready", `repo ${String(e.key[1])} is ready`);
  }
}

async function assertError(res: Response | Promise<Response>, status: number, code: string): Promise<void> {
  const r = await res;
  const text = await r.text();
  assert.equal(r.status, status, text);
  const body = JSON.parse(text) as ErrorBody;
  assert.equal(body.error.code, code, text);
  assert.ok(body.error.message.length > 0);
}

/** `n` bytes from a fixed-seed generator (incompressible, no archive's magic). */
function randomBytes(n: number): Uint8Array {
  let seed = 12345;
  return Uint8Array.from({ length: n }, () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 24);
}

function upload(app: TestApp, filename: string, bytes: Uint8Array, fields: Record<string, string> = {}) {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  form.append("file", new Blob([bytes as Uint8Array<ArrayBuffer>]), filename);
  return app.fetch("/api/repos/upload", { method: "POST", body: form });
}

async function uploadReady(app: TestApp, filename: string, bytes: Uint8Array): Promise<Repo> {
  const res = await upload(app, filename, bytes);
  const text = await res.text();
  assert.equal(res.status, 200, text);
  const repo = (JSON.parse(text) as { repo: Repo }).repo;
  assert.equal(repo.status, "ready");
  assert.equal(repo.source.type, "upload");
  assert.equal(repo.source.filename, filename);
  return repo;
}

async function text(app: TestApp, path: string): Promise<{ status: number; body: string; type: string }> {
  const res = await app.fetch(path);
  return { status: res.status, body: await res.text(), type: res.headers.get("content-type") ?? "" };
}

/** Bytes of a stream, for archives the fakes generate while read. */
function bytesOf(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Response(stream).bytes();
}

// --- GitHub URLs -------------------------------------------------------------------------------

Deno.test("POST /api/repos ingests every GitHub URL form, then answers 200 without a new download", async (t) => {
  const forms = {
    https: "https://github.com/acme/one",
    tree: "https://github.com/acme/two/tree/main",
    git: "https://github.com/acme/three.git",
    shorthand: "acme/four",
    noScheme: "github.com/acme/five",
    www: "https://www.github.com/acme/six/",
  };
  const repos = Object.values(forms).map((url) => ({
    owner: "acme",
    name: url.replace(/^.*acme\/([a-z]+).*$/, "$1"),
    archive: DEMO,
  }));
  await withGitHub(repos, (github) =>
    withApp(github, {}, async (app) => {
      for (const [form, url] of Object.entries(forms)) {
        await t.step(`${form}: ${url}`, async () => {
          const name = url.replace(/^.*acme\/([a-z]+).*$/, "$1");
          const before = github.requests.downloads;
          const repo = await ingestReady(app, { url });
          assert.equal(github.requests.downloads, before + 1);
          assert.deepEqual(repo.source, {
            type: "github",
            owner: "acme",
            name,
            ref: "main",
            sha: fakeSha(`acme/${name}@main`),
          });
          assert.equal(repo.stats.files, DEMO.length);
          assert.equal(repo.stats.skipped, 0);
          assert.equal(repo.stats.bytes, DEMO_BYTES);
          assert.ok(repo.stats.tokens > 20);
          assert.deepEqual(Object.keys(repo.stats.languages).sort(), ["JSON", "Markdown", "TypeScript"]);
          assert.equal(
            Object.values(repo.stats.languages).reduce((a, b) => a + b, 0),
            DEMO_BYTES,
          );
          const listed = await tree(app, repo.id);
          assert.deepEqual(paths(listed), DEMO.map((f) => f.path).sort());

          const again = await app.json<{ repo: Repo; job?: Job }>("/api/repos", postJson({ url }));
          assert.equal(again.status, 200);
          assert.equal(again.body.repo.id, repo.id);
          assert.equal(again.body.repo.status, "ready");
          assert.equal(again.body.job, undefined);
          assert.equal(github.requests.downloads, before + 1, "a second POST downloads nothing");
        });
      }

      await t.step("every form of one repository is the same repo", async () => {
        const first = await app.json<{ repo: Repo }>("/api/repos", postJson({ url: "acme/one" }));
        const second = await app.json<{ repo: Repo }>(
          "/api/repos",
          postJson({ url: "https://github.com/ACME/one.git" }),
        );
        assert.equal(first.status, 200);
        assert.equal(second.status, 200);
        assert.equal(second.body.repo.id, first.body.repo.id);
      });
    }));
});

Deno.test("POST /api/repos stores only the subpath of a /tree/REF/SUBPATH URL and honours ref", async (t) => {
  const v1 = fakeSha("v1");
  await withGitHub(
    [{ owner: "acme", name: "demo", archive: DEMO, refs: { v1 } }],
    (github) =>
      withApp(github, {}, async (app) => {
        await t.step("tree/main/src keeps only src/", async () => {
          const repo = await ingestReady(app, { url: "https://github.com/acme/demo/tree/main/src" });
          assert.equal(repo.source.subpath, "src");
          assert.equal(repo.source.ref, "main");
          const listed = await tree(app, repo.id);
          assert.deepEqual(paths(listed), ["src/index.ts", "src/util/strings.ts"]);
          assert.equal(repo.stats.files, 2);
          assert.equal((await text(app, `/api/repos/${repo.id}/files/README.md`)).status, 404);
        });

        await t.step("an explicit ref is resolved and downloaded", async () => {
          const repo = await ingestReady(app, { url: "acme/demo", ref: "v1" });
          assert.equal(repo.source.ref, "v1");
          assert.equal(repo.source.sha, v1);
          assert.ok(github.requests.log.some((r) => r.path.endsWith(`/tar.gz/${v1}`)));
        });

        await t.step("a ref in a tree URL is used, and a sha works as a ref", async () => {
          const repo = await ingestReady(app, { url: `https://github.com/acme/demo/tree/${v1}/src/util` });
          assert.equal(repo.source.sha, v1);
          assert.deepEqual(paths(await tree(app, repo.id)), ["src/util/strings.ts"]);
        });

        await t.step("an unknown ref is 404 repo_not_found and creates nothing", async () => {
          await assertError(
            app.fetch("/api/repos", postJson({ url: "acme/demo", ref: "nope" })),
            404,
            "repo_not_found",
          );
          await assertError(
            app.fetch("/api/repos", postJson({ url: "https://github.com/acme/demo/tree/nope/src" })),
            404,
            "repo_not_found",
          );
        });
      }),
  );
});

Deno.test("POST /api/repos answers private and missing repos as API.md says", async (t) => {
  const repos: RepoSpec[] = [
    { owner: "acme", name: "secret", private: true, token: "ghp_test", archive: DEMO },
  ];
  await withGitHub(repos, async (github) => {
    await withApp(github, {}, async (app) => {
      await t.step("a missing repo is 404 repo_not_found", async () => {
        await assertError(app.fetch("/api/repos", postJson({ url: "acme/missing" })), 404, "repo_not_found");
      });
      await t.step("a private repo without a token is 404 repo_not_found naming GITHUB_TOKEN", async () => {
        const res = await app.json<ErrorBody>("/api/repos", postJson({ url: "acme/secret" }));
        assert.equal(res.status, 404);
        assert.equal(res.body.error.code, "repo_not_found");
        assert.match(res.body.error.message, /GITHUB_TOKEN/);
      });
      await t.step("a repo GitHub shows as private while no token is set is 403 repo_private", async () => {
        github.addRepo({
          owner: "acme",
          name: "visible",
          private: true,
          visibleWithoutToken: true,
          archive: DEMO,
        });
        await assertError(app.fetch("/api/repos", postJson({ url: "acme/visible" })), 403, "repo_private");
        assert.equal(github.requests.downloads, 0);
      });
      await assertNothingStored(app);
      assert.equal(await countKeys(app, ["repo"]), 0);
    });

    const logged = github.requests.log.length;
    await withApp(github, { GITHUB_TOKEN: "ghp_test" }, async (app) => {
      await t.step(
        "with GITHUB_TOKEN the private repo ingests, the token sent as a Bearer header",
        async () => {
          const repo = await ingestReady(app, { url: "acme/secret" });
          assert.equal(repo.stats.files, DEMO.length);
          const calls = github.requests.log.slice(logged).filter((r) => r.path.includes("/acme/secret"));
          assert.ok(calls.length >= 3);
          for (const call of calls) assert.equal(call.auth, "Bearer ghp_test");
        },
      );
    });
  });
});

// --- filters and limits ------------------------------------------------------------------------

Deno.test("POST /api/repos applies every filter and records each skip reason in the tree", async (t) => {
  await withGitHub(
    [{ owner: "acme", name: "filtered", archive: FILTERED }],
    (github) =>
      withApp(github, { MAX_FILE_BYTES: "4096" }, async (app) => {
        await t.step("default ignores, binaries, secrets, symlinks and the per-file limit", async () => {
          const repo = await ingestReady(app, { url: "acme/filtered" });
          const listed = await tree(app, repo.id);
          assert.deepEqual(paths(listed), [".env.example", "README.md", "src/main.ts"]);
          assert.deepEqual(skipReasons(listed), FILTERED_SKIPS);
          assert.equal(repo.stats.files, 3);
          assert.equal(repo.stats.skipped, Object.keys(FILTERED_SKIPS).length);
          for (const path of Object.keys(FILTERED_SKIPS)) {
            assert.equal((await text(app, `/api/repos/${repo.id}/files/${path}`)).status, 404, path);
          }
          const secrets = ["API_KEY=sk-live-123", "PRIVATE KEY", "not really a key"];
          for await (const e of app.deps.kv.list({ prefix: ["repo_data"] })) {
            const stored = new TextDecoder().decode(
              e.value instanceof Uint8Array ? e.value : new TextEncoder().encode(JSON.stringify(e.value)),
            );
            for (const s of secrets) assert.ok(!stored.includes(s), `${s} is stored under ${String(e.key)}`);
          }
          const digest = await text(app, `/api/repos/${repo.id}/digest`);
          for (const s of secrets) assert.ok(!digest.body.includes(s));
        });

        await t.step("include globs keep only what they match", async () => {
          const repo = await ingestReady(app, { url: "acme/filtered", include: ["src/**"] });
          const listed = await tree(app, repo.id);
          assert.deepEqual(paths(listed), ["src/main.ts"]);
          const reasons = skipReasons(listed);
          assert.equal(reasons["README.md"], "ignored");
          assert.equal(reasons["src/big.ts"], "too_large");
        });

        await t.step("exclude globs drop what they match", async () => {
          const repo = await ingestReady(app, { url: "acme/filtered", exclude: ["**/*.md", "src/**"] });
          const listed = await tree(app, repo.id);
          assert.deepEqual(paths(listed), [".env.example"]);
          assert.equal(skipReasons(listed)["README.md"], "ignored");
          assert.equal(skipReasons(listed)["src/main.ts"], "ignored");
        });

        await t.step("include can name a default-ignored folder, never a secret", async () => {
          const repo = await ingestReady(app, {
            url: "acme/filtered",
            include: ["dist/**", ".env", "config/**"],
          });
          const listed = await tree(app, repo.id);
          assert.deepEqual(paths(listed), ["dist/bundle.js"]);
          assert.equal(skipReasons(listed)[".env"], "secret");
          assert.equal(skipReasons(listed)["config/key.txt"], "secret");
        });

        await t.step("an over-long or empty glob is 400 before anything is fetched", async () => {
          const downloads = github.requests.downloads;
          for (const include of [["x".repeat(201)], [""], Array.from({ length: 51 }, (_, i) => `f${i}`)]) {
            await assertError(
              app.fetch("/api/repos", postJson({ url: "acme/filtered", include })),
              400,
              "invalid_request",
            );
          }
          assert.equal(github.requests.downloads, downloads);
        });
      }),
  );
});

Deno.test("POST /api/repos fails the job with repo_too_large when a limit is broken, storing nothing", async (t) => {
  const files = (n: number, bytes: number) =>
    Array.from({ length: n }, (_, i) => ({ path: `src/f${i}.ts`, content: "x".repeat(bytes) }));
  const repos: RepoSpec[] = [
    { owner: "acme", name: "many", archive: files(6, 10) },
    { owner: "acme", name: "heavy", archive: files(3, 600) },
    { owner: "acme", name: "bomb", archive: ({ folder }) => gzipBomb(1 << 30, { prefix: folder }) },
    {
      owner: "acme",
      name: "deep",
      archive: [
        { path: `node_modules/${"d".repeat(150)}/index.js`, content: "x" },
        ...[1, 2].map((i) => ({ path: `${"deep/".repeat(30)}f${i}.ts`, content: "x" })),
      ],
    },
  ];
  await withGitHub(
    repos,
    (github) =>
      withApp(
        github,
        {
          MAX_FILES: "5",
          MAX_TOTAL_BYTES: "1000",
          MAX_DECOMPRESSED_BYTES: String(1 << 20),
          MAX_TREE_BYTES: "400",
        },
        async (app) => {
          await t.step("file count (MAX_FILES)", async () => {
            const job = await ingestFails(app, { url: "acme/many" }, "repo_too_large");
            assert.match(job.error!.message, /5 files/);
          });
          await t.step("stored bytes (MAX_TOTAL_BYTES)", async () => {
            const job = await ingestFails(app, { url: "acme/heavy" }, "repo_too_large");
            assert.match(job.error!.message, /1000 bytes of stored files/);
          });
          await t.step(
            "decompressed bytes: a 1 GiB gzip bomb stops at MAX_DECOMPRESSED_BYTES, quickly",
            async () => {
              const started = Date.now();
              const job = await ingestFails(app, { url: "acme/bomb" }, "repo_too_large");
              assert.match(job.error!.message, /1 MB of uncompressed/);
              assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
            },
          );
          await t.step("the paths the tree lists, skipped ones too (MAX_TREE_BYTES)", async () => {
            const job = await ingestFails(app, { url: "acme/deep" }, "repo_too_large");
            assert.match(job.error!.message, /400 bytes of file paths/);
          });
          await t.step("under the limits the same app ingests", async () => {
            github.addRepo({ owner: "acme", name: "small", archive: files(5, 100) });
            const repo = await ingestReady(app, { url: "acme/small" });
            assert.equal(repo.stats.files, 5);
          });
        },
      ),
  );
});

// --- bad inputs --------------------------------------------------------------------------------

Deno.test("POST /api/repos answers bad requests with the API.md error and stores nothing", async (t) => {
  await withGitHub(
    [{ owner: "acme", name: "demo", archive: DEMO }],
    (github) =>
      withApp(github, {}, async (app) => {
        const post = (body: string, type = "application/json") =>
          app.fetch("/api/repos", { method: "POST", headers: { "content-type": type }, body });

        await t.step("malformed JSON is 400 invalid_json", async () => {
          await assertError(post('{"url": "acme/demo"'), 400, "invalid_json");
          await assertError(post(""), 400, "invalid_json");
        });
        await t.step("a body over 16 KiB is 413", async () => {
          const body = JSON.stringify({ url: "acme/demo", exclude: ["x".repeat(17 * 1024)] });
          await assertError(post(body), 413, "body_too_large");
          const stream = new Blob([body]).stream();
          await assertError(
            app.fetch("/api/repos", {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: stream,
            }),
            413,
            "body_too_large",
          );
        });
        await t.step("a wrong content type is 415", async () => {
          await assertError(post('{"url":"acme/demo"}', "text/plain"), 415, "unsupported_media_type");
        });
        await t.step("a body of the wrong shape is 400 invalid_request", async () => {
          await assertError(post('{"url": 5}'), 400, "invalid_request");
          await assertError(post('{"url": "acme/demo", "extra": true}'), 400, "invalid_request");
          await assertError(post("[]"), 400, "invalid_request");
        });
        await t.step("URLs that are not repository URLs are 400 invalid_url", async () => {
          for (
            const url of [
              "",
              "acme",
              "https://github.com/acme",
              "https://github.com/acme/demo/issues/1",
              "a b/c",
            ]
          ) {
            await assertError(post(JSON.stringify({ url })), 400, url ? "invalid_url" : "invalid_request");
          }
        });
        await t.step("other hosts are 422 unsupported_host", async () => {
          for (const url of ["https://gitlab.com/acme/demo", "https://github.com.evil.example/acme/demo"]) {
            await assertError(post(JSON.stringify({ url })), 422, "unsupported_host");
          }
        });
        await t.step("SSRF attempts never reach the network", async () => {
          const attempts = [
            "http://127.0.0.1/acme/demo",
            "http://localhost:8000/acme/demo",
            "http://[::1]/acme/demo",
            "http://10.0.0.1/acme/demo",
            "http://192.168.1.10/acme/demo",
            "http://172.16.0.1/acme/demo",
            "http://169.254.169.254/latest/meta-data",
            "169.254.169.254/latest/meta-data/",
            "file:///etc/passwd",
            "file://github.com/acme/demo",
            "ftp://github.com/acme/demo",
            "https://github.com:8443/acme/demo",
            `http://127.0.0.1:${new URL(github.apiUrl).port}/acme/demo`,
          ];
          for (const url of attempts) {
            const res = await app.fetch("/api/repos", postJson({ url }));
            const body = await res.json() as ErrorBody;
            assert.equal(res.status, 422, `${url}: ${JSON.stringify(body)}`);
            assert.equal(body.error.code, "unsupported_host", url);
          }
          for (
            const url of ["https://github.com@127.0.0.1/acme/demo", "https://user:pw@github.com/acme/demo"]
          ) {
            await assertError(post(JSON.stringify({ url })), 400, "invalid_url");
          }
          assert.equal(github.requests.api + github.requests.downloads, 0, "the fake GitHub was contacted");
        });
        await assertNothingStored(app);
        assert.equal(await countKeys(app, ["repo"]), 0);
        assert.equal(await countKeys(app, ["job"]), 0);
      }),
  );
});

Deno.test("ingest jobs refuse hostile GitHub archives and leave nothing behind", async (t) => {
  const demo = await buildTarGz(DEMO, { prefix: "acme-x-0000000" });
  let otherRequests = 0;
  const counted = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async () => {
    otherRequests++;
    return await Promise.resolve(new Response(demo));
  });
  const offHost = `http://127.0.0.1:${counted.addr.port}/acme/demo/tar.gz/main`;
  const repos: RepoSpec[] = [
    { owner: "acme", name: "redirect", redirectTo: offHost },
    {
      owner: "acme",
      name: "dotdot",
      archive: [{ path: "README.md", content: "hi" }, { path: "../../evil.sh", content: "rm -rf /" }],
    },
    { owner: "acme", name: "corrupt", archive: corrupt(demo, 40, 64) },
    { owner: "acme", name: "truncated", archive: truncate(demo, demo.length - 30) },
    { owner: "acme", name: "notgzip", archive: new TextEncoder().encode("<html>not an archive</html>") },
  ];
  try {
    await withGitHub(repos, (github) =>
      withApp(github, {}, async (app) => {
        await t.step(
          "a codeload redirect to another host fails the job; the other host gets nothing",
          async () => {
            await ingestFails(app, { url: "acme/redirect" }, "unsupported_host");
            assert.equal(otherRequests, 0);
          },
        );
        await t.step("a `..` path fails invalid_archive", async () => {
          await ingestFails(app, { url: "acme/dotdot" }, "invalid_archive");
        });
        await t.step("an absolute path fails invalid_archive", async () => {
          github.addRepo({
            owner: "acme",
            name: "absolute",
            archive: await buildTarGz([{ path: "README.md", content: "hi" }, {
              path: "/etc/cron.d/x",
              content: "x",
            }]),
          });
          await ingestFails(app, { url: "acme/absolute" }, "invalid_archive");
        });
        await t.step("a corrupt archive fails invalid_archive", async () => {
          await ingestFails(app, { url: "acme/corrupt" }, "invalid_archive");
        });
        await t.step("a truncated archive fails invalid_archive", async () => {
          await ingestFails(app, { url: "acme/truncated" }, "invalid_archive");
        });
        await t.step("a body that is not an archive fails invalid_archive", async () => {
          await ingestFails(app, { url: "acme/notgzip" }, "invalid_archive");
        });
        await assertNothingStored(app);
      }));
  } finally {
    await counted.shutdown();
  }
});

Deno.test("ingest jobs retry a download that failed or was cut off, then fail with github_unavailable", async (t) => {
  const archive = await buildTarGz(
    Array.from(
      { length: 40 },
      (_, i) => ({ path: `src/f${i}.ts`, content: `export const v${i} = ${i};\n`.repeat(80) }),
    ),
    { prefix: "acme-x-0000000" },
  );
  const repos: RepoSpec[] = [
    { owner: "acme", name: "flaky", archive, failDownloads: 1 },
    { owner: "acme", name: "cut", archive, truncateAt: 4000 },
  ];
  await withGitHub(repos, (github) =>
    withApp(github, { JOB_MAX_ATTEMPTS: "2" }, async (app) => {
      await t.step("a 500 from codeload is retried and the second attempt succeeds", async () => {
        const { job, repo } = await ingest(app, { url: "acme/flaky" });
        assert.equal(job.status, "succeeded");
        assert.equal(job.attempts, 2);
        assert.equal(repo.stats.files, 40);
      });
      await t.step("a connection cut mid-body is retried, not taken for a bad archive", async () => {
        const before = github.requests.downloads;
        const job = await ingestFails(app, { url: "acme/cut" }, "github_unavailable");
        assert.equal(job.attempts, 2);
        assert.equal(github.requests.downloads, before + 2);
      });
    }));
});

Deno.test("POST /api/repos answers 504 when the GitHub API does not answer in time", async () => {
  const { promise: never, resolve: release } = Promise.withResolvers<void>();
  const stalled = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async () => {
    await never;
    return new Response("late");
  });
  const base = `http://127.0.0.1:${stalled.addr.port}`;
  const app = await startTestApp({ env: { GITHUB_API_URL: base, GITHUB_CODELOAD_URL: base } });
  try {
    (app.deps.config.github as GitHubConfig).timeoutMs = 300;
    const started = Date.now();
    await assertError(app.fetch("/api/repos", postJson({ url: "acme/demo" })), 504, "github_unavailable");
    assert.ok(Date.now() - started < 3000);
    await assertNothingStored(app);
  } finally {
    release();
    await app.close();
    await stalled.shutdown();
  }
});

Deno.test("POST /api/repos re-ingests an expired repo and the sweep removes expired data", async (t) => {
  const clock = new FakeClock(Date.now());
  await withGitHub([{ owner: "acme", name: "demo", archive: DEMO }], async (github) => {
    const app = await startTestApp({
      clock,
      env: { GITHUB_API_URL: github.apiUrl, GITHUB_CODELOAD_URL: github.codeloadUrl, REPO_TTL: "1h" },
    });
    try {
      const first = await ingestReady(app, { url: "acme/demo" });
      const dataKeys = await countKeys(app, ["repo_data"]);
      assert.ok(dataKeys > 0);

      await t.step(
        "an expired repo is 404 and a new POST ingests it again, dropping the old data",
        async () => {
          clock.advance(3_600_001);
          await assertError(app.fetch(`/api/repos/${first.id}`), 404, "not_found");
          const again = await ingestReady(app, { url: "acme/demo" });
          assert.equal(again.id, first.id);
          assert.equal(github.requests.downloads, 2);
          assert.equal(await countKeys(app, ["repo_data"]), dataKeys, "one generation of data, not two");
        },
      );

      await t.step("the sweep removes an expired repo's record, index entry and data", async () => {
        clock.advance(3_600_001);
        assert.equal(await sweepExpiredRepos(app.deps.kv, clock), 1);
        assert.equal(await countKeys(app, ["repo_data"]), 0);
        assert.equal(await countKeys(app, ["repo"]), 0);
        assert.equal(await countKeys(app, keys.repoExpiryPrefix()), 0);
      });
    } finally {
      await app.close();
    }
  });
});

// --- uploads -------------------------------------------------------------------------------------

Deno.test("POST /api/repos/upload ingests .tar.gz, .tgz, .tar and .zip and serves files and digests", async (t) => {
  const app = await startTestApp();
  try {
    const archives: [string, Uint8Array][] = [
      ["demo.tar.gz", await buildTarGz(DEMO)],
      ["demo.tgz", await buildTarGz(DEMO, { prefix: "demo-1.0" })],
      ["demo.tar", await buildTar(DEMO)],
      ["demo.zip", buildZip(DEMO)],
    ];
    for (const [filename, bytes] of archives) {
      await t.step(filename, async () => {
        const repo = await uploadReady(app, filename, bytes);
        assert.equal(repo.stats.files, DEMO.length);
        const listed = await tree(app, repo.id);
        // demo.tgz has a top folder, which is dropped: every archive lists the same paths.
        assert.deepEqual(paths(listed), DEMO.map((f) => f.path).sort());
        const file = await text(app, `/api/repos/${repo.id}/files/src/util/strings.ts`);
        assert.equal(file.status, 200);
        assert.equal(file.type, "text/plain; charset=utf-8");
        assert.equal(file.body, DEMO[3].content);
        // under 1,024 characters but over 1,024 bytes: longer than any stored path
        const longPath = encodeURIComponent("日".repeat(700));
        for (const path of ["nope.ts", longPath]) {
          const missing = await app.json<ErrorBody>(`/api/repos/${repo.id}/files/${path}`);
          assert.equal(missing.status, 404);
          assert.equal(missing.body.error.code, "not_found");
        }
      });
    }

    await t.step("the digest streams summary, tree, then files by priority; maxTokens trims", async () => {
      const repo = await uploadReady(app, "digest.tar.gz", await buildTarGz(DEMO));
      const full = await text(app, `/api/repos/${repo.id}/digest`);
      assert.equal(full.status, 200);
      assert.match(full.type, /^text\/plain/);
      const treeAt = full.body.indexOf("## Tree");
      const filesAt = full.body.indexOf("## Files");
      assert.ok(full.body.startsWith("# digest.tar.gz"));
      assert.ok(treeAt > 0 && filesAt > treeAt);
      const order = [...full.body.matchAll(/^===== (.+) =====$/gm)].map((m) => m[1]);
      assert.deepEqual(order, [
        "README.md",
        "package.json",
        "src/index.ts",
        "src/util/strings.ts",
        "tests/strings_test.ts",
      ]);
      for (const f of DEMO) assert.ok(full.body.includes(f.content as string), f.path);

      const listed = await tree(app, repo.id);
      const readmeTokens = listed.files.find((f) => f.path === "README.md")!.tokens;
      const trimmed = await text(app, `/api/repos/${repo.id}/digest?maxTokens=${readmeTokens}`);
      const kept = [...trimmed.body.matchAll(/^===== (.+) =====$/gm)].map((m) => m[1]);
      assert.deepEqual(kept, ["README.md"]);
      await assertError(app.fetch(`/api/repos/${repo.id}/digest?maxTokens=0`), 400, "invalid_request");
      await assertError(app.fetch(`/api/repos/${repo.id}/digest?maxTokens=abc`), 400, "invalid_request");
    });

    await t.step("a file with model special tokens such as <|endoftext|> is stored and counted", async () => {
      const gpt = "text = prompt + '<|endoftext|>' + '<|im_start|>'\n";
      const repo = await uploadReady(app, "ml.tar", await buildTar([{ path: "train.py", content: gpt }]));
      assert.equal(repo.stats.files, 1);
      assert.ok(repo.stats.tokens > 10);
      assert.equal((await text(app, `/api/repos/${repo.id}/files/train.py`)).body, gpt);
    });

    await t.step("include and exclude fields apply to uploads", async () => {
      const res = await upload(app, "f.tar.gz", await buildTarGz(DEMO), { include: "src/**" });
      const body = await res.json() as { repo: Repo };
      assert.equal(res.status, 200);
      assert.equal(body.repo.stats.files, 2);
      // comma-separated, with a comma inside a {…} list that belongs to its glob
      const braces = await upload(app, "f.tar.gz", await buildTarGz(DEMO), {
        include: "{src,tests}/**, README.md",
      });
      assert.equal(braces.status, 200);
      assert.equal(((await braces.json()) as { repo: Repo }).repo.stats.files, 4);
    });
  } finally {
    await app.close();
  }
});

Deno.test("POST /api/repos/upload refuses bad archives with 400/413/422 and stores nothing", async (t) => {
  const app = await startTestApp({
    env: { UPLOAD_MAX_BYTES: String(64 * 1024), MAX_FILES: "5", MAX_DECOMPRESSED_BYTES: String(1 << 20) },
  });
  try {
    const demo = await buildTarGz(DEMO);
    const dotdot = [{ path: "README.md", content: "hi" }, { path: "a/../../evil.sh", content: "x" }];
    const absolute = [{ path: "README.md", content: "hi" }, { path: "/etc/passwd", content: "x" }];
    const encryptedZip = buildZip(DEMO);
    encryptedZip[6] |= 1; // the first entry's "encrypted" flag
    const bad: [string, string, Uint8Array, number, string][] = [
      ["`..` in a tar.gz", "x.tar.gz", await buildTarGz(dotdot), 400, "invalid_archive"],
      ["`..` in a tar", "x.tar", await buildTar(dotdot), 400, "invalid_archive"],
      ["`..` in a zip", "x.zip", buildZip(dotdot), 400, "invalid_archive"],
      ["an absolute path in a tar", "x.tar", await buildTar(absolute), 400, "invalid_archive"],
      ["an absolute path in a zip", "x.zip", buildZip(absolute), 400, "invalid_archive"],
      ["a corrupt tar.gz", "x.tar.gz", corrupt(demo, 40, 64), 400, "invalid_archive"],
      ["a truncated tar.gz", "x.tar.gz", truncate(demo, demo.length - 30), 400, "invalid_archive"],
      ["a truncated tar", "x.tar", truncate(await buildTar(DEMO), 1000), 400, "invalid_archive"],
      ["a corrupt zip", "x.zip", corrupt(buildZip(DEMO), 40, 64), 400, "invalid_archive"],
      ["a truncated zip", "x.zip", truncate(buildZip(DEMO), 200), 400, "invalid_archive"],
      ["a PNG named .zip", "x.zip", PNG, 400, "invalid_archive"],
      ["a zip with an encrypted entry", "x.zip", encryptedZip, 400, "invalid_archive"],
      [
        "text named .tar.gz",
        "x.tar.gz",
        new TextEncoder().encode("hello ".repeat(200)),
        400,
        "invalid_archive",
      ],
      ["an empty file", "x.tar", new Uint8Array(0), 400, "invalid_archive"],
      ["60 KB of random bytes named .tgz", "x.tgz", randomBytes(60 * 1024), 400, "invalid_archive"],
      ["a .txt file", "notes.txt", new TextEncoder().encode("hello"), 400, "invalid_archive"],
      [
        "more files than allowed",
        "many.zip",
        buildZip(Array.from({ length: 6 }, (_, i) => ({ path: `f${i}.ts`, content: "x" }))),
        422,
        "repo_too_large",
      ],
      [
        "more symlinks than allowed",
        "links.tar.gz",
        await buildTarGz(
          Array.from({ length: 6 }, (_, i) => ({ path: `l${i}`, type: "symlink", linkTarget: "README.md" })),
        ),
        422,
        "repo_too_large",
      ],
      ["a gzip bomb", "bomb.tar.gz", await bytesOf(gzipBomb(16 << 20)), 422, "repo_too_large"],
      [
        "a zip bomb",
        "bomb.zip",
        buildZip([{ path: "zeros.txt", content: new Uint8Array(8 << 20) }]),
        422,
        "repo_too_large",
      ],
      ["an upload over UPLOAD_MAX_BYTES", "big.tar", new Uint8Array(100 * 1024), 413, "upload_too_large"],
    ];
    for (const [what, filename, bytes, status, code] of bad) {
      await t.step(what, async () => {
        await assertError(upload(app, filename, bytes), status, code);
        await assertNothingStored(app);
      });
    }
    await t.step("a symlink in a tar is skipped, never followed", async () => {
      const repo = await uploadReady(
        app,
        "links.tar",
        await buildTar([
          { path: "README.md", content: "hi\n" },
          { path: "passwd", type: "symlink", linkTarget: "/etc/passwd" },
          { path: "up", type: "symlink", linkTarget: "../../.." },
          { path: "hard", type: "hardlink", linkTarget: "README.md" },
        ]),
      );
      const listed = await tree(app, repo.id);
      assert.deepEqual(paths(listed), ["README.md"]);
      assert.deepEqual(skipReasons(listed), { passwd: "symlink", up: "symlink", hard: "symlink" });
      assert.equal((await text(app, `/api/repos/${repo.id}/files/passwd`)).status, 404);
    });
    await t.step(
      "a path given twice in a tar keeps the later entry: a file, or nothing after a symlink",
      async () => {
        const repo = await uploadReady(
          app,
          "twice.tar",
          await buildTar([
            { path: "README.md", content: "first\n" },
            { path: "link", content: "a file at first\n" },
            { path: "README.md", content: "second\n" },
            { path: "link", type: "symlink", linkTarget: "README.md" },
          ]),
        );
        const listed = await tree(app, repo.id);
        assert.deepEqual(paths(listed), ["README.md"]);
        assert.deepEqual(skipReasons(listed), { link: "symlink" });
        assert.equal((await text(app, `/api/repos/${repo.id}/files/README.md`)).body, "second\n");
        assert.equal((await text(app, `/api/repos/${repo.id}/files/link`)).status, 404);
        assert.equal(repo.stats.files, 1);
      },
    );
    await t.step(
      "a symlink in a zip is skipped too, though the zip marks it only in its central directory",
      async () => {
        const repo = await uploadReady(
          app,
          "links.zip",
          buildZip([
            { path: "README.md", content: "hi\n" },
            { path: "passwd", type: "symlink", linkTarget: "/etc/passwd" },
            { path: "docs/up", type: "symlink", linkTarget: "../../.." },
          ]),
        );
        const listed = await tree(app, repo.id);
        assert.deepEqual(paths(listed), ["README.md"]);
        assert.deepEqual(skipReasons(listed), { passwd: "symlink", "docs/up": "symlink" });
        assert.equal((await text(app, `/api/repos/${repo.id}/files/passwd`)).status, 404);
        const kinds: Record<string, number> = {};
        let numbered = 0;
        for await (const e of app.deps.kv.list<{ paths?: string[] }>({ prefix: ["repo_data", repo.id] })) {
          kinds[String(e.key[3])] = (kinds[String(e.key[3])] ?? 0) + 1;
          if (e.key[3] === "file_numbers") numbered += e.value.paths!.length;
        }
        const blobs = (kinds.file ?? 0) + (kinds.files ?? 0);
        assert.equal(blobs, 1, "the links' entries, read as files first, are not left in KV");
        assert.equal(numbered, kinds.files ?? 0);
      },
    );
    await t.step("not multipart is 415; a form without a file field is 400", async () => {
      await assertError(
        app.fetch("/api/repos/upload", {
          method: "POST",
          headers: { "content-type": "application/gzip" },
          body: demo,
        }),
        415,
        "unsupported_media_type",
      );
      const form = new FormData();
      form.append("other", "x");
      await assertError(
        app.fetch("/api/repos/upload", { method: "POST", body: form }),
        400,
        "invalid_request",
      );
    });
    assert.equal(await countKeys(app, ["repo"]), 3, "only the symlink uploads' repos are stored");
  } finally {
    await app.close();
  }
});

// --- jobs and concurrency ----------------------------------------------------------------------

Deno.test("GET /api/jobs/:id/events streams progress events, then done", async () => {
  await withGitHub(
    [{ owner: "acme", name: "slow", archive: DEMO, delayMs: 30, chunkBytes: 64 }],
    (github) =>
      withApp(github, {}, async (app) => {
        const start = await app.json<{ job: Job; repo: Repo }>("/api/repos", postJson({ url: "acme/slow" }));
        assert.equal(start.status, 202);
        const res = await app.fetch(`/api/jobs/${start.body.job.id}/events`);
        assert.equal(res.status, 200);
        assert.match(res.headers.get("content-type") ?? "", /^text\/event-stream/);
        const events = parseSse(await res.text());
        const names = events.map((e) => e.event);
        assert.equal(names.at(-1), "done");
        assert.ok(names.slice(0, -1).every((n) => n === "progress"), names.join(","));
        const phases = new Set(events.map((e) => (e.data as Job).progress.phase));
        assert.ok(phases.has("downloading"), [...phases].join(","));
        const ids = events.map((e) => Number(e.id));
        assert.deepEqual(ids, ids.map((_, i) => i + 1));
        const done = events.at(-1)!.data as Job;
        assert.equal(done.status, "succeeded");
        assert.equal(done.id, start.body.job.id);

        const after = await app.fetch(`/api/jobs/${start.body.job.id}/events`);
        const ended = parseSse(await after.text());
        assert.deepEqual(ended.map((e) => e.event), ["done"], "a finished job's stream ends at once");
        await assertError(app.fetch("/api/jobs/nope/events"), 404, "not_found");
      }),
  );
});

Deno.test("POST /api/repos from 20 simultaneous callers makes one job and one download", async () => {
  await withGitHub(
    [{ owner: "acme", name: "popular", archive: DEMO, delayMs: 20, chunkBytes: 128 }],
    (github) =>
      withApp(github, {}, async (app) => {
        const answers = await Promise.all(
          Array.from({ length: 20 }, () =>
            app.json<{ job: Job; repo: Repo }>("/api/repos", postJson({ url: "acme/popular" }))),
        );
        for (const a of answers) {
          assert.equal(a.status, 202, JSON.stringify(a.body));
        }
        const jobIds = new Set(answers.map((a) =>
          a.body.job.id
        ));
        const repoIds = new Set(answers.map((a) => a.body.repo.id));
        assert.equal(jobIds.size, 1);
        assert.equal(repoIds.size, 1);
        const job = await jobEnd(app, [...jobIds][0]);
        assert.equal(job.status, "succeeded");
        assert.equal(github.requests.downloads, 1);
        assert.equal(await countKeys(app, ["job"]), 1);
      }),
  );
});

Deno.test("POST /api/repos/upload drops the archive's top folder when it starts with one", async (t) => {
  const app = await startTestApp();
  const entries: FixtureEntry[] = [
    { path: "README.md", content: "# Top\n" },
    { path: "src/main.ts", content: "export const x = 1;\n" },
  ];
  const paths = async (repo: Repo) =>
    ((await (await app.fetch(`/api/repos/${repo.id}/tree`)).json()) as { files: { path: string }[] }).files
      .map((f) => f.path).sort();
  try {
    await t.step("tar.gz with a top folder, as `tar czf x.tgz proj/` writes it", async () => {
      const repo = await uploadReady(app, "proj.tar.gz", await buildTarGz(entries, { prefix: "proj-main/" }));
      assert.deepEqual(await paths(repo), ["README.md", "src/main.ts"]);
    });
    await t.step("zip with a top folder, as GitHub's Download ZIP writes it", async () => {
      const repo = await uploadReady(app, "proj.zip", buildZip(entries, { prefix: "proj-main/" }));
      assert.deepEqual(await paths(repo), ["README.md", "src/main.ts"]);
    });
    await t.step("an archive of loose files keeps its paths", async () => {
      const repo = await uploadReady(app, "loose.tar", await buildTar(entries));
      assert.deepEqual(await paths(repo), ["README.md", "src/main.ts"]);
    });
    await t.step("zip entries stored uncompressed, small and large, as zip -0 writes them", async () => {
      // a small stored entry is a view into the upload's chunk: it must be stored on its own
      const stored = [...entries, { path: "data/big.txt", content: "lorem ipsum\n".repeat(10_000) }];
      const repo = await uploadReady(app, "stored.zip", buildZip(stored, { store: true }));
      assert.deepEqual(await paths(repo), ["README.md", "data/big.txt", "src/main.ts"]);
      assert.equal(
        await (await app.fetch(`/api/repos/${repo.id}/files/src/main.ts`)).text(),
        entries[1].content,
      );
    });
    await t.step("a macOS zip's __MACOSX/ folder does not keep the top folder", async () => {
      const appleDouble = new Uint8Array([0, 5, 22, 7, 0, 2, 0, 0, 0, 0, 0, 0]);
      const mac = [
        ...entries.map((e) => ({ ...e, path: `proj/${e.path}` })),
        { path: "__MACOSX/proj/._README.md", content: appleDouble },
      ];
      const repo = await uploadReady(app, "proj.zip", buildZip(mac));
      assert.deepEqual(await paths(repo), ["README.md", "src/main.ts"]);
    });
    await t.step("npm pack's package/ folder, with no folder entries, is dropped too", async () => {
      const npm = entries.map((e) => ({ ...e, path: `package/${e.path}` }));
      const repo = await uploadReady(app, "pkg-1.0.0.tgz", await buildTarGz(npm));
      assert.deepEqual(await paths(repo), ["README.md", "src/main.ts"]);
    });
    await t.step("several folders, the first one a folder entry, keep their paths", async () => {
      // as `tar czf x.tgz lib routes README.md` writes it: nothing may be merged into the root
      const several: FixtureEntry[] = [
        { path: "lib", type: "directory" },
        { path: "lib/config.ts", content: "export const lib = 1;\n" },
        { path: "routes", type: "directory" },
        { path: "routes/config.ts", content: "export const routes = 1;\n" },
        { path: "config.ts", content: "export const root = 1;\n" },
      ];
      for (
        const archive of [
          await buildTarGz(several),
          buildZip(several.filter((e) => e.type !== "directory")),
        ]
      ) {
        const repo = await uploadReady(app, archive[0] === 0x1f ? "several.tgz" : "several.zip", archive);
        assert.deepEqual(await paths(repo), ["config.ts", "lib/config.ts", "routes/config.ts"]);
        const root = await app.fetch(`/api/repos/${repo.id}/files/config.ts`);
        assert.equal(await root.text(), "export const root = 1;\n");
      }
    });
    await t.step("one top folder larger than the look-ahead is still dropped", async () => {
      // 9 MB under proj/ (over the 8 MB held back), then a file outside it, which keeps its path
      const big = Array.from({ length: 10 }, (_, i) => ({
        path: `proj/data/part${i}.txt`,
        content: `${"lorem ipsum dolor sit amet\n".repeat(34_000)}`,
      }));
      const archive = await buildTar([...big, { path: "NOTICE", content: "outside\n" }]);
      const repo = await uploadReady(app, "big.tar", archive);
      const listed = await paths(repo);
      assert.equal(listed.length, 11);
      assert.ok(listed.includes("data/part0.txt") && listed.includes("NOTICE"), listed.join(", "));
    });
  } finally {
    await app.close();
  }
});
