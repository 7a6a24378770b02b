/**
 * Durability of ingest jobs: the real app (main.ts) runs as a subprocess on a KV file, is killed
 * with SIGKILL in the middle of a download, and is started again on the same file. The job must
 * end (here: succeed, on a later attempt) and no reader may ever see a half-ingested repo.
 */
import assert from "node:assert/strict";
import { type AppProcess, startAppProcess } from "../bench/app_process.ts";
import { buildTarGz, type FixtureEntry } from "./fakes/archives.ts";
import { startFakeGitHub } from "./fakes/github.ts";
import { waitFor } from "./helpers.ts";

type Job = { id: string; status: string; attempts: number; progress: { phase: string; done: number } };
type Repo = { id: string; status: string; stats: { files: number } };
type TreeBody = { files?: { path: string }[]; error?: { code: string } };

/** Files of pseudo-random text (so gzip keeps the archive about as large as its contents). */
function fixture(files: number, bytes: number): FixtureEntry[] {
  let seed = 7;
  const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ";
  return Array.from({ length: files }, (_, i) => {
    let body = `// module ${i}\n`;
    while (body.length < bytes) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      body += (seed >>> 16) % 61 === 0 ? "\n" : letters[(seed >>> 8) % letters.length];
    }
    return { path: `src/mod${String(i).padStart(3, "0")}.ts`, content: `${body}\n` };
  });
}

async function getJson<T>(app: AppProcess, path: string): Promise<{ status: number; body: T }> {
  const res = await fetch(`${app.url}${path}`);
  return { status: res.status, body: await res.json() as T };
}

/**
 * The repo as any reader sees it: still ingesting with no tree, or ready with the whole tree.
 * The repo may become ready between two requests, so the file and tree are read before the repo:
 * whatever was read before an "ingesting" answer must show nothing, and after a "ready" answer
 * the tree must be whole.
 */
async function assertNoHalfState(app: AppProcess, repoId: string, expectedPaths: string[]): Promise<string> {
  const fileBefore = await fetch(`${app.url}/api/repos/${repoId}/files/${expectedPaths[0]}`);
  await fileBefore.body?.cancel();
  const treeBefore = await getJson<TreeBody>(app, `/api/repos/${repoId}/tree`);
  const repo = await getJson<Repo>(app, `/api/repos/${repoId}`);
  assert.equal(repo.status, 200);
  if (repo.body.status === "ready") {
    const tree = await getJson<TreeBody>(app, `/api/repos/${repoId}/tree`);
    assert.equal(tree.status, 200);
    assert.deepEqual(tree.body.files!.map((f) => f.path).sort(), expectedPaths);
    assert.equal(repo.body.stats.files, expectedPaths.length);
  } else {
    assert.equal(repo.body.status, "ingesting");
    assert.equal(treeBefore.status, 404);
    assert.equal(treeBefore.body.error?.code, "repo_not_ready");
    assert.equal(fileBefore.status, 404);
  }
  return repo.body.status;
}

Deno.test("main.ts finishes an ingest after a SIGKILL mid-download, never showing a half-ingested repo", async () => {
  const files = fixture(120, 1500);
  const expectedPaths = files.map((f) => f.path).sort();
  const archive = await buildTarGz(files, { prefix: "acme-durable-0000000" });
  const github = await startFakeGitHub();
  // ~90 chunks of 2 KiB, 40 ms apart: about 3.5 s of download, killed after the first few.
  github.addRepo({ owner: "acme", name: "durable", archive, chunkBytes: 2048, delayMs: 40 });
  const dir = await Deno.makeTempDir({ prefix: "repolm-durability-" });
  const kvPath = `${dir}/repolm.kv`;
  const env = {
    GITHUB_API_URL: github.apiUrl,
    GITHUB_CODELOAD_URL: github.codeloadUrl,
    JOB_LEASE: "2s",
    LOG_LEVEL: "warn",
  };
  let app: AppProcess | undefined;
  try {
    app = await startAppProcess(env, { kvPath });
    const res = await fetch(`${app.url}/api/repos`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ url: "acme/durable" }),
    });
    assert.equal(res.status, 202);
    const { repo, job } = await res.json() as { repo: Repo; job: Job };

    const first = app;
    const downloading = await waitFor(
      async () => {
        const { body } = await getJson<Job>(first, `/api/jobs/${job.id}`);
        return body.status === "running" && body.progress.phase === "downloading" && body.progress.done > 0
          ? body
          : null;
      },
      20_000,
      "the download to start",
    );
    assert.ok(downloading.progress.done < archive.length, "the download already finished");
    assert.equal(await assertNoHalfState(app, repo.id, expectedPaths), "ingesting");
    await app.kill();
    assert.equal(github.requests.downloads, 1);
    // The same commit, served faster, so the test does not wait on a second slow download.
    github.addRepo({ owner: "acme", name: "durable", archive, chunkBytes: 8192, delayMs: 10 });

    // The restarted app may take the job over at once (the lease lapses 2 s after the last renewal),
    // so the repo is either still ingesting or complete whenever it is looked at, never between.
    app = await startAppProcess(env, { kvPath });
    const second = app;
    const ended = await waitFor(
      async () => {
        await assertNoHalfState(second, repo.id, expectedPaths);
        const { body } = await getJson<Job>(second, `/api/jobs/${job.id}`);
        return ["succeeded", "failed", "canceled"].includes(body.status) ? body : null;
      },
      40_000,
      "the job to end after the restart",
    );
    assert.equal(ended.status, "succeeded", JSON.stringify(ended));
    assert.ok(ended.attempts >= 2, `attempts: ${ended.attempts}`);
    assert.equal(github.requests.downloads, 2);
    assert.equal(await assertNoHalfState(second, repo.id, expectedPaths), "ready");
    for (const f of files) {
      const file = await fetch(`${second.url}/api/repos/${repo.id}/files/${f.path}`);
      assert.equal(file.status, 200, f.path);
      assert.equal(await file.text(), f.content, f.path);
    }
    await second.stop();
    app = undefined;

    // Only the finished generation's data is left: files, the tree and the index, nothing else.
    const kv = await Deno.openKv(kvPath);
    try {
      const gens = new Set<string>();
      const kinds: Record<string, number> = {};
      let numbered = 0;
      for await (const e of kv.list<{ paths?: string[] }>({ prefix: ["repo_data", repo.id] })) {
        gens.add(String(e.key[2]));
        kinds[String(e.key[3])] = (kinds[String(e.key[3])] ?? 0) + 1;
        if (e.key[3] === "file_numbers") numbered += e.value.paths!.length;
      }
      assert.deepEqual([...gens], [job.id]);
      // each file's blob, under its path or a number, and the path's number for each of the latter
      assert.equal((kinds.file ?? 0) + (kinds.files ?? 0), files.length);
      assert.equal(numbered, kinds.files ?? 0);
    } finally {
      kv.close();
    }
  } finally {
    await app?.kill().catch(() => {});
    await github.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
