import assert from "node:assert/strict";
import { contentFilter, pathFilter } from "../../lib/filters.ts";

Deno.test("pathFilter gives each default rule its API.md reason", () => {
  const skip = pathFilter({});
  const expected: Record<string, string | null> = {
    "src/main.ts": null,
    "README.md": null,
    ".env.example": null,
    "node_modules/x/index.js": "vendored",
    "vendor/lib.go": "vendored",
    ".git/config": "ignored",
    "dist/app.js": "ignored",
    "web/app.min.js": "ignored",
    "package-lock.json": "ignored",
    "Cargo.lock": "ignored",
    ".env": "secret",
    ".env.production": "secret",
    "deploy/server.pem": "secret",
    "home/.ssh/id_rsa": "secret",
    "credentials.json": "secret",
    "assets/logo.png": "binary",
  };
  for (const [path, reason] of Object.entries(expected)) assert.equal(skip(path), reason, path);
});

Deno.test("pathFilter applies include and exclude globs; an include overrides default ignores but not secrets", () => {
  const skip = pathFilter({ include: ["src/**", "dist/**", "**/.env"], exclude: ["**/*.test.ts"] });
  assert.equal(skip("src/a.ts"), null);
  assert.equal(skip("src/a.test.ts"), "ignored");
  assert.equal(skip("docs/a.md"), "ignored");
  assert.equal(skip("dist/out.js"), null);
  assert.equal(skip("src/.env"), "secret");
});

Deno.test("contentFilter sniffs binary content and embedded private keys", () => {
  const enc = new TextEncoder();
  assert.equal(contentFilter(enc.encode("const a = 1;\n")), null);
  assert.equal(contentFilter(new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 13, 0, 1, 2, 3])), "binary");
  assert.equal(contentFilter(enc.encode("x\n-----BEGIN RSA PRIVATE KEY-----\nMIIE\n")), "secret");
  assert.equal(contentFilter(enc.encode("aws = 'AKIAABCDEFGHIJKLMNOP'")), "secret");
});
