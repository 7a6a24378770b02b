/** routes/static.ts: the page for its paths, hashed assets cached for a year, precompressed bytes. */
import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { Hono } from "hono";
import { errorBody } from "../../lib/errors.ts";
import { acceptedEncodings, staticRoutes } from "../../routes/static.ts";

const encoder = new TextEncoder();

/** A fake build in a temp dir: index.html, one hashed script with .gz (no .br), a manifest. */
async function fakeDist(): Promise<URL> {
  const dir = await Deno.makeTempDir({ prefix: "repolm-dist-" });
  const url = new URL(`file://${dir}/`);
  const js = "console.log('page');";
  await Deno.writeTextFile(
    new URL("index.html", url),
    '<script type="module" src="/assets/app.0123456789ab.js"></script>',
  );
  await Deno.writeFile(new URL("index.html.gz", url), gzipSync(encoder.encode("<html>")));
  await Deno.writeTextFile(new URL("app.0123456789ab.js", url), js);
  await Deno.writeFile(new URL("app.0123456789ab.js.gz", url), gzipSync(encoder.encode(js)));
  await Deno.writeTextFile(
    new URL("manifest.json", url),
    JSON.stringify({
      sourceHash: "x",
      assets: { "app.js": "app.0123456789ab.js" },
      types: { "app.0123456789ab.js": "text/javascript; charset=utf-8" },
      indexHash: "abc123",
    }),
  );
  return url;
}

function appFor(distDir: URL) {
  const app = new Hono();
  const pages = staticRoutes({ distDir });
  app.route("/", pages.routes);
  // as routes/mod.ts
  app.notFound((c) =>
    pages.notFound(c) ?? c.json(errorBody("not_found", "Nothing is served at that address."), 404)
  );
  return (path: string, headers: Record<string, string> = {}) =>
    Promise.resolve(app.fetch(new Request(`http://local${path}`, { headers })));
}

Deno.test("staticRoutes serves the page for /, /r/:id and /a/:id with no-cache and an ETag", async () => {
  const dist = await fakeDist();
  try {
    const get = appFor(dist);
    for (const path of ["/", "/r/abc_DEF-1", "/a/xyz"]) {
      const res = await get(path);
      assert.equal(res.status, 200, path);
      assert.equal(res.headers.get("content-type"), "text/html; charset=utf-8");
      assert.equal(res.headers.get("cache-control"), "no-cache");
      assert.equal(res.headers.get("etag"), '"abc123"');
      assert.match(await res.text(), /app\.0123456789ab\.js/);
    }
    const cached = await get("/", { "if-none-match": '"abc123"' });
    assert.equal(cached.status, 304);
    assert.equal((await get("/r/bad%20id")).status, 404);
  } finally {
    await Deno.remove(dist, { recursive: true });
  }
});

Deno.test("staticRoutes: a page request for a bad /r/ or /a/ address gets the page (it says Not found)", async () => {
  const dist = await fakeDist();
  try {
    const get = appFor(dist);
    const html = { accept: "text/html,application/xhtml+xml,*/*;q=0.8" };
    const trailing = await get("/r/abc/", html);
    assert.equal(trailing.status, 200, "the page reads /r/:id/ too");
    assert.match(await trailing.text(), /app\.0123456789ab\.js/);
    for (const path of ["/r/bad%20id", "/r/abc/files", "/a/x/y", "/r/", "/foo", "/docs/x.md"]) {
      const res = await get(path, html);
      assert.equal(res.status, 404, path);
      assert.equal(res.headers.get("content-type"), "text/html; charset=utf-8", path);
      assert.equal(res.headers.get("vary"), "Accept, Accept-Encoding", path);
      assert.match(await res.text(), /app\.0123456789ab\.js/, path);
    }
    const json = { accept: "application/json" };
    const notPages = [
      ["/api/nothing", html],
      ["/assets/x", html],
      ["/admin", html],
      ["/foo", json],
      ["/r/bad%20id", json],
      ["/a/x/y", {}],
    ] as const;
    for (const [path, headers] of notPages) {
      const res = await get(path, headers);
      assert.equal(res.status, 404, path);
      assert.equal(res.headers.get("content-type"), "application/json", `${path} stays JSON`);
      assert.equal((await res.json()).error.code, "not_found");
    }
  } finally {
    await Deno.remove(dist, { recursive: true });
  }
});

Deno.test("staticRoutes sends hashed assets immutable, compressed when the client accepts it", async (t) => {
  const dist = await fakeDist();
  try {
    const get = appFor(dist);
    await t.step("gzip twin when gzip is accepted (no .br built for this one)", async () => {
      const res = await get("/assets/app.0123456789ab.js", { "accept-encoding": "br, gzip" });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("cache-control"), "public, max-age=31536000, immutable");
      assert.equal(res.headers.get("content-encoding"), "gzip");
      assert.equal(res.headers.get("vary"), "Accept-Encoding");
      assert.equal(res.headers.get("content-type"), "text/javascript; charset=utf-8");
      await res.body?.cancel();
    });
    await t.step("identity when nothing is accepted", async () => {
      const res = await get("/assets/app.0123456789ab.js", { "accept-encoding": "gzip;q=0" });
      assert.equal(res.headers.get("content-encoding"), null);
      assert.equal(await res.text(), "console.log('page');");
    });
    await t.step("unknown assets are a JSON 404", async () => {
      const res = await get("/assets/app.ffffffffffff.js");
      assert.equal(res.status, 404);
      assert.equal((await res.json()).error.code, "not_found");
    });
  } finally {
    await Deno.remove(dist, { recursive: true });
  }
});

Deno.test("staticRoutes answers 503 page_not_built until a build exists", async () => {
  const dir = await Deno.makeTempDir({ prefix: "repolm-dist-" });
  try {
    const res = await appFor(new URL(`file://${dir}/`))("/");
    assert.equal(res.status, 503);
    assert.equal((await res.json()).error.code, "page_not_built");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("acceptedEncodings honours q=0 refusals", () => {
  assert.deepEqual([...acceptedEncodings("gzip, deflate, br;q=0")], ["gzip", "deflate"]);
  assert.deepEqual([...acceptedEncodings(undefined)], []);
});
