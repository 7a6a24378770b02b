import assert from "node:assert/strict";
import { checkArchivePath } from "../../lib/paths.ts";

Deno.test("checkArchivePath strips the top folder and normalises", () => {
  assert.deepEqual(checkArchivePath("repo-abc/src/./main.ts", 1), { ok: true, path: "src/main.ts" });
  assert.deepEqual(checkArchivePath("src//a.ts", 0), { ok: true, path: "src/a.ts" });
  assert.deepEqual(checkArchivePath("repo-abc/", 1), { ok: true, path: "" });
});

Deno.test("checkArchivePath rejects parent references, absolute paths, drive letters and NUL", () => {
  for (const bad of ["../evil", "a/../../evil", "/etc/passwd", "C:/Windows/x", "..\\evil", "a\0b"]) {
    assert.equal(checkArchivePath(bad, 0).ok, false, bad);
  }
});
