/** Include/exclude globs at the routes: a glob the matcher refuses is a 400 saying what globs may use. */
import assert from "node:assert/strict";
import { postJson, startTestApp } from "../helpers.ts";

Deno.test("globs: POST /api/repos and the upload refuse an extglob with 400 invalid_request and the glob syntax", async () => {
  const app = await startTestApp({ startWorker: false });
  try {
    const res = await app.json<{ error: { code: string; message: string } }>(
      "/api/repos",
      postJson({ url: "https://github.com/a/b", include: ["src/**", "+(a|b)/**"] }),
    );
    assert.equal(res.status, 400);
    assert.equal(res.body.error.code, "invalid_request");
    assert.match(
      res.body.error.message,
      /"\+\(a\|b\)\/\*\*": extglobs are not supported.*\*\* \(any folders\)/,
    );
    const form = new FormData();
    form.set("exclude", "src/*(x)");
    form.set("file", new File([new Uint8Array(10)], "repo.zip"));
    const upload = await app.json<{ error: { code: string; message: string } }>(
      "/api/repos/upload",
      { method: "POST", body: form },
    );
    assert.equal(upload.status, 400);
    assert.equal(upload.body.error.code, "invalid_request");
    assert.match(upload.body.error.message, /extglobs are not supported/);
  } finally {
    await app.close();
  }
});
