/**
 * The web page: index.html for `/`, `/r/:repoId` and `/a/:artifactId` (the page reads the path; a
 * trailing slash is fine), and with a 404 for any other address a browser opens as a page that
 * nothing else serves (the page then says "Not found"); and the bundled assets under `/assets/` with content-hashed
 * names. Assets are immutable for a year; the page is `no-cache` with an ETag, so a new build is
 * picked up on the next visit.
 * Everything is sent precompressed (br, else gzip) from the twins scripts/build_static.ts writes.
 *
 * The build output is read once per process and kept in memory (it is small and never changes
 * while the process runs: `deno task dev` restarts the server when static/dist/ changes).
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { errorBody } from "../lib/errors.ts";

interface Manifest {
  assets: Record<string, string>;
  types: Record<string, string>;
  indexHash: string;
}

interface Variant {
  body: Uint8Array<ArrayBuffer>;
  encoding?: "br" | "gzip";
}

interface Asset {
  type: string;
  etag: string;
  variants: Variant[];
}

interface Loaded {
  index: Asset;
  assets: Map<string, Asset>;
}

const DEFAULT_DIST = new URL("../static/dist/", import.meta.url);
const HTML = "text/html; charset=utf-8";
const IMMUTABLE = "public, max-age=31536000, immutable";
const PAGE_PATH = /^\/[ra]\/[A-Za-z0-9_-]{1,128}\/?$/;

async function readOptional(url: URL): Promise<Uint8Array<ArrayBuffer> | undefined> {
  try {
    return await Deno.readFile(url) as Uint8Array<ArrayBuffer>;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

async function loadAsset(dist: URL, name: string, type: string, etag: string): Promise<Asset | undefined> {
  const plain = await readOptional(new URL(name, dist));
  if (!plain) return undefined;
  const variants: Variant[] = [];
  const br = await readOptional(new URL(`${name}.br`, dist));
  if (br) variants.push({ body: br, encoding: "br" });
  const gz = await readOptional(new URL(`${name}.gz`, dist));
  if (gz) variants.push({ body: gz, encoding: "gzip" });
  variants.push({ body: plain });
  return { type, etag, variants };
}

async function loadDist(dist: URL): Promise<Loaded | null> {
  const text = await readOptional(new URL("manifest.json", dist));
  if (!text) return null;
  const manifest = JSON.parse(new TextDecoder().decode(text)) as Manifest;
  const index = await loadAsset(dist, "index.html", HTML, manifest.indexHash);
  if (!index) return null;
  const assets = new Map<string, Asset>();
  for (const file of Object.values(manifest.assets)) {
    const asset = await loadAsset(dist, file, manifest.types[file] ?? "application/octet-stream", file);
    if (asset) assets.set(file, asset);
  }
  return { index, assets };
}

/** Which encodings the client accepts (q=0 refuses). */
export function acceptedEncodings(header: string | undefined): Set<string> {
  const out = new Set<string>();
  for (const part of (header ?? "").split(",")) {
    const [name, ...params] = part.trim().toLowerCase().split(";");
    const q = params.map((p) => p.trim()).find((p) => p.startsWith("q="));
    if (name && !(q && Number(q.slice(2)) === 0)) out.add(name);
  }
  return out;
}

function send(c: Context, asset: Asset, cacheControl: string, status: 200 | 404 = 200): Response {
  const accepted = acceptedEncodings(c.req.header("accept-encoding"));
  const variant = asset.variants.find((v) => !v.encoding || accepted.has(v.encoding) || accepted.has("*"))!;
  const etag = `"${asset.etag}${variant.encoding ? `-${variant.encoding}` : ""}"`;
  const headers = new Headers({
    "Content-Type": asset.type,
    "Cache-Control": cacheControl,
    "Vary": "Accept-Encoding",
    "ETag": etag,
    "X-Content-Type-Options": "nosniff",
  });
  if (variant.encoding) headers.set("Content-Encoding", variant.encoding);
  const match = c.req.header("if-none-match");
  if (status === 200 && match && match.split(",").some((tag) => tag.trim().replace(/^W\//, "") === etag)) {
    return new Response(null, { status: 304, headers });
  }
  headers.set("Content-Length", String(variant.body.byteLength));
  return new Response(c.req.method === "HEAD" ? null : variant.body, { status, headers });
}

/** Paths that are never pages, whatever a client accepts. */
const NOT_PAGES = /^\/(api|assets|admin)(\/|$)|^\/(health|metrics)$/;

/**
 * Routes serving the page and its assets from `distDir` (default static/dist/), and the answer for
 * an address nothing else serves: a browser asking for a page gets the page with a 404 (the page
 * then says "Not found"); anything else gets null, for the app's JSON 404.
 */
export function staticRoutes(options: { distDir?: URL } = {}): {
  routes: Hono;
  notFound(c: Context): Promise<Response> | null;
} {
  const dist = options.distDir ?? DEFAULT_DIST;
  let loaded: Promise<Loaded | null> | null = null;
  const load = async () => {
    loaded ??= loadDist(dist);
    const result = await loaded;
    if (!result) loaded = null; // not built yet: look again on the next request
    return result;
  };
  const app = new Hono();

  const page = async (c: Context, status: 200 | 404 = 200) => {
    const built = await load();
    if (!built) {
      return c.json(
        errorBody(
          "page_not_built",
          "The web page has not been built. Run `deno task build` (deno task dev, start and test do it for you).",
        ),
        503,
      );
    }
    return send(c, built.index, "no-cache", status);
  };
  app.get("/", (c) => page(c));
  // The page reads /r/:repoId and /a/:artifactId, with a trailing slash too. (Unknown addresses are
  // answered by `notFound`, not a catch-all route: metrics name a request by the last route it
  // matched, so one would hide the API's route names.)
  app.get("/r/*", (c, next) => (PAGE_PATH.test(c.req.path) ? page(c) : next()));
  app.get("/a/*", (c, next) => (PAGE_PATH.test(c.req.path) ? page(c) : next()));
  const notFound = (c: Context) => {
    const asksForPage = (c.req.method === "GET" || c.req.method === "HEAD") &&
      !NOT_PAGES.test(c.req.path) && c.req.header("accept")?.includes("text/html");
    if (!asksForPage) return null;
    return page(c, 404).then((res) => {
      res.headers.set("Vary", "Accept, Accept-Encoding"); // the same address answers JSON to other clients
      return res;
    });
  };

  app.get("/assets/:file{[A-Za-z0-9._-]+}", async (c) => {
    const built = await load();
    const asset = built?.assets.get(c.req.param("file"));
    if (!asset) {
      return c.json(errorBody("not_found", "No such asset; reload the page to get the current ones."), 404);
    }
    return send(c, asset, IMMUTABLE);
  });

  return { routes: app, notFound };
}
