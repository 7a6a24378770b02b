import assert from "node:assert/strict";
import { parseGitHubUrl, withExplicitRef } from "../../lib/github_url.ts";
import { AppError } from "../../lib/errors.ts";

const HOSTS = ["github.com", "www.github.com"];

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return `${(e as AppError).status} ${(e as AppError).code}`;
  }
  return "ok";
}

Deno.test("parseGitHubUrl accepts every URL form API.md lists", async (t) => {
  const cases: [string, object][] = [
    ["https://github.com/denoland/deno", { owner: "denoland", name: "deno" }],
    ["https://github.com/denoland/deno/", { owner: "denoland", name: "deno" }],
    ["https://github.com/denoland/deno.git", { owner: "denoland", name: "deno" }],
    ["http://www.github.com/denoland/deno", { owner: "denoland", name: "deno" }],
    ["github.com/denoland/deno", { owner: "denoland", name: "deno" }],
    ["denoland/deno", { owner: "denoland", name: "deno" }],
    ["denoland/deno.git", { owner: "denoland", name: "deno" }],
    ["https://github.com/denoland/deno/tree/v2.0.0", { owner: "denoland", name: "deno", ref: "v2.0.0" }],
    ["https://github.com/denoland/deno/tree/main/cli/tools", {
      owner: "denoland",
      name: "deno",
      ref: "main",
      subpath: "cli/tools",
    }],
    ["https://github.com/a/b.js?tab=readme#top", { owner: "a", name: "b.js" }],
  ];
  for (const [input, expected] of cases) {
    await t.step(input, () => assert.deepEqual(parseGitHubUrl(input, HOSTS), expected));
  }
});

Deno.test("parseGitHubUrl refuses other hosts and SSRF attempts with 422 unsupported_host", async (t) => {
  for (
    const input of [
      "https://evil.example/a/b",
      "http://127.0.0.1/a/b",
      "http://localhost:8000/a/b",
      "http://10.0.0.5/a/b",
      "http://192.168.1.1/a/b",
      "http://[::1]/a/b",
      "http://169.254.169.254/latest/meta-data",
      "file:///etc/passwd",
      "ftp://github.com/a/b",
      "https://github.com:8443/a/b",
      "https://github.com.evil.example/a/b",
      "https://gitlab.com/a/b",
    ]
  ) {
    await t.step(input, () => assert.equal(code(() => parseGitHubUrl(input, HOSTS)), "422 unsupported_host"));
  }
});

Deno.test("parseGitHubUrl answers 400 invalid_url for malformed input", async (t) => {
  for (
    const input of [
      "",
      "   ",
      "just-a-word",
      "https://github.com/onlyowner",
      "https://user:pass@github.com/a/b",
      "https://github.com/a/b/issues/1",
      "https://github.com/a/../b",
      "https://github.com/-bad/x",
      "a/b c",
      "https://github.com/a/b/tree/%E0%A4%A",
      // one segment that decodes to several: a ref of ../../../users/x
      "https://github.com/a/b/tree/..%2F..%2F..%2Fusers%2Fx",
      "https://github.com/a/b/tree/main/src%2F..%2F..",
    ]
  ) {
    await t.step(
      JSON.stringify(input),
      () => assert.equal(code(() => parseGitHubUrl(input, HOSTS)), "400 invalid_url"),
    );
  }
});

Deno.test("withExplicitRef lets the body's ref win and splits a multi-segment ref from the path", () => {
  const target = parseGitHubUrl("https://github.com/o/r/tree/feature/x/src/lib", HOSTS);
  assert.deepEqual(withExplicitRef(target, "feature/x"), {
    owner: "o",
    name: "r",
    ref: "feature/x",
    subpath: "src/lib",
  });
  assert.deepEqual(withExplicitRef(parseGitHubUrl("o/r", HOSTS), "v1"), { owner: "o", name: "r", ref: "v1" });
  assert.equal(code(() => withExplicitRef(parseGitHubUrl("o/r", HOSTS), "../x")), "400 invalid_url");
});
