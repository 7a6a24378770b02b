import assert from "node:assert/strict";
import { createTarDecoder, type TarHeader, unpackTar } from "modern-tar";
import { unzipSync } from "fflate";
import {
  buildTar,
  buildTarGz,
  buildZip,
  corrupt,
  type FixtureEntry,
  gzipBomb,
  syntheticRepoStream,
  truncate,
} from "./archives.ts";
import { type FakeGitHub, fakeSha, startFakeGitHub } from "./github.ts";

const MiB = 1 << 20;
const GiB = 1 << 30;
const SHA_ACCEPT = { accept: "application/vnd.github.sha" };

const HOSTILE: FixtureEntry[] = [
  { path: "ok.txt", content: "fine\n" },
  { path: "../evil.txt", content: "escape" },
  { path: "/etc/passwd", content: "root:x:0:0" },
  { path: "nul\0.txt.png", content: "nul" },
  { path: "link", type: "symlink", linkTarget: "../../etc/shadow" },
  { path: "hard", type: "hardlink", linkTarget: "/etc/passwd" },
  { path: "dir", type: "directory" },
  { path: `${"deep/".repeat(40)}long.ts`, content: "export {};\n" },
];

function gunzip(bytes: Uint8Array<ArrayBuffer>): Promise<Uint8Array> {
  return new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"))).bytes();
}

/** Headers of every entry of a tar.gz stream, decoded with modern-tar's streaming decoder. */
async function tarGzHeaders(stream: ReadableStream<Uint8Array<ArrayBuffer>>): Promise<TarHeader[]> {
  const headers: TarHeader[] = [];
  const entries = stream.pipeThrough(new DecompressionStream("gzip")).pipeThrough(
    createTarDecoder({ strict: true }),
  );
  for await (const entry of entries) {
    headers.push(entry.header);
    await entry.body.cancel();
  }
  return headers;
}

/** `os` and Unix mode of each entry, read from the zip central directory. */
function zipUnixModes(zip: Uint8Array): Map<string, { os: number; mode: number }> {
  const view = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  const modes = new Map<string, { os: number; mode: number }>();
  let at = view.getUint32(zip.length - 6, true);
  while (view.getUint32(at, true) === 0x02014b50) {
    const [nameLen, extraLen, commentLen] = [28, 30, 32].map((o) => view.getUint16(at + o, true));
    const name = new TextDecoder().decode(zip.subarray(at + 46, at + 46 + nameLen));
    modes.set(name, { os: view.getUint8(at + 5), mode: view.getUint32(at + 38, true) >>> 16 });
    at += 46 + nameLen + extraLen + commentLen;
  }
  return modes;
}

async function withGitHub(fn: (github: FakeGitHub) => Promise<void>): Promise<void> {
  const github = await startFakeGitHub();
  try {
    await fn(github);
  } finally {
    await github.close();
  }
}

async function getSha(github: FakeGitHub, repo: string, ref: string, auth?: string): Promise<Response> {
  return await fetch(`${github.apiUrl}/repos/${repo}/commits/${ref}`, {
    headers: { ...SHA_ACCEPT, ...(auth ? { authorization: auth } : {}) },
  });
}

// --- archives ----------------------------------------------------------------------------------

Deno.test("buildTar keeps hostile names, links and directories verbatim", async () => {
  const entries = await unpackTar(await buildTar(HOSTILE));
  const byName = new Map(entries.map((e) => [e.header.name, e]));
  assert.deepEqual([...byName.keys()], [
    "ok.txt",
    "../evil.txt",
    "/etc/passwd",
    "nul", // the NUL byte is written verbatim; tar readers stop the name there
    "link",
    "hard",
    "dir/",
    `${"deep/".repeat(40)}long.ts`,
  ]);
  assert.equal(new TextDecoder().decode(byName.get("../evil.txt")?.data), "escape");
  assert.equal(byName.get("link")?.header.type, "symlink");
  assert.equal(byName.get("link")?.header.linkname, "../../etc/shadow");
  assert.equal(byName.get("hard")?.header.type, "link");
  assert.equal(byName.get("dir/")?.header.type, "directory");
});

Deno.test("buildTar puts entries under the prefix and writes the pax comment like git archive", async () => {
  const tar = await buildTar([{ path: "a.ts", content: "x" }], {
    prefix: "o-r-abc1234",
    comment: "f".repeat(40),
  });
  const entries = await unpackTar(tar, { strict: true });
  assert.deepEqual(entries.map((e) => e.header.name), ["o-r-abc1234/", "o-r-abc1234/a.ts"]);
  assert.equal(entries[1].header.pax?.comment, "f".repeat(40));
  assert.deepEqual(
    await buildTar([{ path: "a.ts", content: "x" }]),
    await buildTar([{ path: "a.ts", content: "x" }]),
  );
});

Deno.test("buildTarGz is a gzipped tar", async () => {
  const gz = await buildTarGz(HOSTILE, { prefix: "top" });
  assert.deepEqual([gz[0], gz[1]], [0x1f, 0x8b]);
  const headers = await tarGzHeaders(new Blob([gz]).stream());
  assert.equal(headers.length, HOSTILE.length + 1);
  assert.equal(headers[2].name, "top/../evil.txt");
});

Deno.test("buildZip keeps hostile names and marks symlinks with Unix mode 0o120777", () => {
  const zip = buildZip([
    { path: "../x", content: "x" },
    { path: "/abs", content: "abs" },
    { path: "link", type: "symlink", linkTarget: "/etc/passwd" },
    { path: "dir", type: "directory" },
  ]);
  const files = unzipSync(zip);
  assert.deepEqual(Object.keys(files), ["../x", "/abs", "link", "dir/"]);
  assert.equal(new TextDecoder().decode(files.link), "/etc/passwd");
  const modes = zipUnixModes(zip);
  assert.deepEqual(modes.get("link"), { os: 3, mode: 0o120777 });
  assert.deepEqual(modes.get("../x"), { os: 3, mode: 0o100644 });
  assert.deepEqual(modes.get("dir/"), { os: 3, mode: 0o040755 });
  assert.throws(() => buildZip([{ path: "a" }, { path: "a" }]), /duplicate/);
  assert.throws(() => buildZip([{ path: "h", type: "hardlink", linkTarget: "a" }]), /hard links/);
});

Deno.test("gzipBomb is small compressed and declares a huge file", async () => {
  let compressed = 0;
  for await (const chunk of gzipBomb(256 * MiB)) compressed += chunk.length;
  assert.ok(compressed < 512 * 1024, `compressed ${compressed} bytes`);

  const reader = gzipBomb(2 * GiB, { prefix: "o-r-abc1234" }).pipeThrough(new DecompressionStream("gzip"))
    .getReader();
  const head: Uint8Array<ArrayBuffer>[] = [];
  let inflated = 0;
  while (inflated < 50 * MiB) {
    const { value } = await reader.read();
    assert.ok(value, "bomb ended early");
    if (inflated < 2048) head.push(value);
    inflated += value.length;
  }
  await reader.cancel();
  const start = new Uint8Array(await new Blob(head).arrayBuffer());
  const fileHeader = start.subarray(512, 1024);
  assert.equal(new TextDecoder().decode(fileHeader.subarray(0, 21)), "o-r-abc1234/zeros.txt");
  assert.equal(parseInt(new TextDecoder().decode(fileHeader.subarray(124, 135)), 8), 2 * GiB);
});

Deno.test("syntheticRepoStream has the requested files, sizes and is deterministic", async () => {
  const opts = { files: 300, bytesPerFile: 2_000, prefix: "acme-big-1234567", seed: 42 };
  const headers = await tarGzHeaders(syntheticRepoStream(opts));
  const files = headers.filter((h) => h.type === "file");
  assert.equal(files.length, 300);
  assert.equal(new Set(files.map((h) => h.name)).size, 300);
  assert.ok(files.every((h) => h.size === 2_000 && h.name.startsWith("acme-big-1234567/")));

  const bytes = (seed: number) => new Response(syntheticRepoStream({ ...opts, files: 20, seed })).bytes();
  assert.deepEqual(await bytes(42), await bytes(42));
  assert.notDeepEqual(await bytes(42), await bytes(43));

  // sorted: the same files, in path order
  const sorted = (await tarGzHeaders(syntheticRepoStream({ ...opts, sorted: true }))).filter((h) =>
    h.type === "file"
  );
  const names = files.map((h) => h.name);
  assert.notDeepEqual(names, names.toSorted(), "unsorted, they come in random order");
  assert.deepEqual(sorted.map((h) => h.name), names.toSorted());
});

Deno.test("syntheticRepoStream generates source-looking text", async () => {
  const tar = await gunzip(
    await new Response(syntheticRepoStream({ files: 5, bytesPerFile: 3_000 })).bytes(),
  );
  const [first] = await unpackTar(tar);
  const text = new TextDecoder().decode(first.data);
  assert.match(text, /^import \{ \w+, \w+ \} from "\.\.\/\w+\/\w+\.ts";$/m);
  assert.match(text, /export (function|interface|class|const) \w+/);
  assert.ok(text.endsWith("\n"));
});

Deno.test("corrupt and truncate break a tar.gz", async () => {
  const gz = await buildTarGz([{ path: "a.txt", content: "hello ".repeat(1000) }]);
  const bad = corrupt(gz);
  assert.equal(bad.length, gz.length);
  assert.notDeepEqual(bad, gz);
  await assert.rejects(gunzip(bad));
  assert.equal(truncate(gz, 20).length, 20);
  await assert.rejects(gunzip(truncate(gz, gz.length - 10)));
});

// --- fake GitHub -------------------------------------------------------------------------------

Deno.test("fake GitHub serves repo info, hides private repos and counts requests", async () => {
  await withGitHub(async (github) => {
    github.addRepo({ owner: "acme", name: "demo" });
    github.addRepo({ owner: "acme", name: "secret", private: true, token: "t0k", defaultBranch: "trunk" });
    const info = await (await fetch(`${github.apiUrl}/repos/ACME/Demo`)).json();
    assert.deepEqual(info, {
      name: "demo",
      full_name: "acme/demo",
      owner: { login: "acme" },
      private: false,
      default_branch: "main",
    });

    const missing = await fetch(`${github.apiUrl}/repos/acme/nope`);
    assert.equal(missing.status, 404);
    assert.equal((await missing.json()).message, "Not Found");

    const hidden = await fetch(`${github.apiUrl}/repos/acme/secret`);
    assert.equal(hidden.status, 404);
    await hidden.body?.cancel();
    const wrong = await fetch(`${github.apiUrl}/repos/acme/secret`, {
      headers: { authorization: "Bearer nope" },
    });
    assert.equal(wrong.status, 404);
    await wrong.body?.cancel();
    for (const authorization of ["Bearer t0k", "token t0k"]) {
      const seen = await (await fetch(`${github.apiUrl}/repos/acme/secret`, { headers: { authorization } }))
        .json();
      assert.deepEqual([seen.private, seen.default_branch], [true, "trunk"]);
    }
    assert.deepEqual([github.requests.api, github.requests.commits, github.requests.downloads], [6, 0, 0]);
    assert.equal(github.requests.log.at(-1)?.auth, "token t0k");
    assert.deepEqual(github.requests.log[0], {
      method: "GET",
      path: "/api/repos/ACME/Demo",
      auth: undefined,
    });
  });
});

Deno.test("fake GitHub resolves branches and shas, 422 for unknown refs", async () => {
  await withGitHub(async (github) => {
    const tag = "a".repeat(40);
    github.addRepo({ owner: "acme", name: "demo", refs: { "feature/x": tag } });
    const main = await (await getSha(github, "acme/demo", "main")).text();
    assert.match(main, /^[0-9a-f]{40}$/);
    assert.equal(main, fakeSha("acme/demo@main"));
    assert.equal(await (await getSha(github, "acme/demo", "feature%2Fx")).text(), tag);
    assert.equal(await (await getSha(github, "acme/demo", "feature/x")).text(), tag);
    assert.equal(await (await getSha(github, "acme/demo", tag)).text(), tag);
    assert.deepEqual(await (await fetch(`${github.apiUrl}/repos/acme/demo/commits/main`)).json(), {
      sha: main,
    });

    const unknown = await getSha(github, "acme/demo", "nope");
    assert.equal(unknown.status, 422);
    assert.equal((await unknown.json()).message, "No commit found for SHA: nope");
    assert.equal(github.requests.commits, 6);
  });
});

Deno.test("fake GitHub serves a codeload tar.gz with GitHub's top folder", async () => {
  await withGitHub(async (github) => {
    github.addRepo({ owner: "acme", name: "demo", archive: [{ path: "src/a.ts", content: "export {};\n" }] });
    const sha = await (await getSha(github, "acme/demo", "main")).text();
    const res = await fetch(`${github.codeloadUrl}/acme/demo/tar.gz/${sha}`);
    assert.equal(res.headers.get("content-type"), "application/x-gzip");
    const entries = await unpackTar(await gunzip(await res.bytes()));
    const top = `acme-demo-${sha.slice(0, 7)}/`;
    assert.deepEqual(entries.map((e) => e.header.name), [top, `${top}src/a.ts`]);
    assert.equal(entries[1].header.pax?.comment, sha);

    const gone = await fetch(`${github.codeloadUrl}/acme/demo/tar.gz/${"0".repeat(40)}`);
    assert.equal(gone.status, 404);
    await gone.body?.cancel();
    assert.equal(github.requests.downloads, 2);
  });
});

Deno.test("fake GitHub codeload hides private repos without the token", async () => {
  await withGitHub(async (github) => {
    github.addRepo({ owner: "acme", name: "secret", private: true, token: "t0k" });
    const sha = fakeSha("acme/secret@main");
    const hidden = await fetch(`${github.codeloadUrl}/acme/secret/tar.gz/${sha}`);
    assert.equal(hidden.status, 404);
    await hidden.body?.cancel();
    const res = await fetch(`${github.codeloadUrl}/acme/secret/tar.gz/${sha}`, {
      headers: { authorization: "Bearer t0k" },
    });
    assert.equal(res.status, 200);
    assert.ok((await res.bytes()).length > 0);
  });
});

Deno.test("fake GitHub injects failures and redirects", async () => {
  await withGitHub(async (github) => {
    github.addRepo({ owner: "acme", name: "flaky", failDownloads: 2 });
    github.addRepo({ owner: "acme", name: "moved", redirectTo: "http://169.254.169.254/latest/meta-data" });
    const flaky = `${github.codeloadUrl}/acme/flaky/tar.gz/main`;
    const statuses = [];
    for (let i = 0; i < 3; i++) {
      const res = await fetch(flaky);
      statuses.push(res.status);
      await res.body?.cancel();
    }
    assert.deepEqual(statuses, [500, 500, 200]);

    const moved = await fetch(`${github.codeloadUrl}/acme/moved/tar.gz/main`, { redirect: "manual" });
    assert.equal(moved.status, 302);
    assert.equal(moved.headers.get("location"), "http://169.254.169.254/latest/meta-data");
    await moved.body?.cancel();
  });
});

Deno.test("fake GitHub truncates a body: the client gets N bytes, then an error", async () => {
  await withGitHub(async (github) => {
    const archive = await buildTarGz([{
      path: "r.bin",
      content: crypto.getRandomValues(new Uint8Array(50_000)),
    }]);
    github.addRepo({ owner: "acme", name: "cut", archive, truncateAt: 30_000, chunkBytes: 8_000 });
    const res = await fetch(`${github.codeloadUrl}/acme/cut/tar.gz/main`);
    let received = 0;
    await assert.rejects(async () => {
      for await (const chunk of res.body!) received += chunk.length;
    });
    assert.equal(received, 30_000);
  });
});

Deno.test("fake GitHub streams slowly in small chunks and closes mid-download", async () => {
  await withGitHub(async (github) => {
    github.addRepo({
      owner: "acme",
      name: "bomb",
      delayMs: 20,
      chunkBytes: 1_000,
      archive: ({ folder }) => gzipBomb(GiB, { prefix: folder }),
    });
    const started = performance.now();
    const res = await fetch(`${github.codeloadUrl}/acme/bomb/tar.gz/main`);
    const reader = res.body!.getReader();
    let received = 0;
    while (received < 5_000) {
      const { value } = await reader.read();
      assert.ok(value && value.length <= 1_000);
      received += value.length;
    }
    assert.ok(performance.now() - started >= 80, "chunks should be paced");
    await reader.cancel();
  });
});

Deno.test("fake GitHub close() ends bodies still streaming", async () => {
  const github = await startFakeGitHub();
  github.addRepo({ owner: "acme", name: "slow", delayMs: 50, chunkBytes: 100, archive: () => gzipBomb(GiB) });
  const res = await fetch(`${github.codeloadUrl}/acme/slow/tar.gz/main`);
  const reader = res.body!.getReader();
  assert.ok((await reader.read()).value);
  await github.close();
  let received = 0;
  for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
    received += chunk.value.length;
  }
  assert.ok(received < 1_000, `received ${received} bytes after close`);
});

Deno.test("fake GitHub answers unknown paths like GitHub", async () => {
  await withGitHub(async (github) => {
    const api = await fetch(`${github.apiUrl}/user`);
    assert.deepEqual([api.status, (await api.json()).message], [404, "Not Found"]);
    const post = await fetch(`${github.apiUrl}/repos/acme/demo`, { method: "POST", body: "{}" });
    assert.equal(post.status, 404);
    await post.body?.cancel();
    const codeload = await fetch(`${github.codeloadUrl}/acme/demo/zip/main`);
    assert.deepEqual([codeload.status, await codeload.text()], [404, "404: Not Found"]);
  });
});
