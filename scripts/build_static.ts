/**
 * Builds the web page into static/dist/: `deno bundle` of static/src/main.ts (type-checked,
 * minified), the stylesheet and icon, each under a content-hashed name; index.html pointing at
 * them; and .gz/.br twins so the server sends compressed bytes without compressing per request.
 * manifest.json is written last: it is the commit point routes/static.ts reads.
 *
 * Skips all work when nothing it reads changed (a hash of the sources is kept in the manifest), so
 * `deno task dev|start|test` can run it every time. `--watch` rebuilds on changes; `--force` always builds.
 *
 *   deno run --allow-read --allow-write --allow-run --allow-env scripts/build_static.ts [--watch] [--force]
 */
import { brotliCompressSync, constants, gzipSync } from "node:zlib";

const ROOT = new URL("../", import.meta.url);
const STATIC = new URL("static/", ROOT);
export const DIST = new URL("static/dist/", ROOT);

/** What the server needs to know about a build. */
export interface Manifest {
  /** Hash of every input; equal hash, same output. */
  sourceHash: string;
  builtAt: string;
  /** Logical name → hashed file name under /assets/. */
  assets: Record<string, string>;
  /** Hashed file name → content type. */
  types: Record<string, string>;
  /** The page's own ETag value. */
  indexHash: string;
}

const TYPES: Record<string, string> = {
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".html": "text/html; charset=utf-8",
};

async function sha256(data: Uint8Array | string): Promise<string> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function* walk(dir: URL, prefix = ""): AsyncGenerator<string> {
  const names: Deno.DirEntry[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry);
  names.sort((a, b) => a.name.localeCompare(b.name));
  for (const entry of names) {
    if (!prefix && entry.name === "dist") continue;
    if (entry.isDirectory) yield* walk(new URL(`${entry.name}/`, dir), `${prefix}${entry.name}/`);
    else if (entry.isFile) yield `${prefix}${entry.name}`;
  }
}

/** Hash of every input of the build: static/ sources, the dependency pins, and this script. */
async function sourceHash(): Promise<string> {
  const parts: string[] = [];
  for await (const path of walk(STATIC)) {
    parts.push(path, await sha256(await Deno.readFile(new URL(path, STATIC))));
  }
  for (const file of ["deno.json", "deno.lock", "scripts/build_static.ts"]) {
    try {
      parts.push(file, await sha256(await Deno.readFile(new URL(file, ROOT))));
    } catch {
      parts.push(file, "missing");
    }
  }
  parts.push(Deno.version.deno);
  return await sha256(parts.join("\n"));
}

async function readManifest(): Promise<Manifest | null> {
  try {
    return JSON.parse(await Deno.readTextFile(new URL("manifest.json", DIST)));
  } catch {
    return null;
  }
}

async function exists(url: URL): Promise<boolean> {
  try {
    await Deno.stat(url);
    return true;
  } catch {
    return false;
  }
}

function hashedName(name: string, hash: string): string {
  const dot = name.indexOf(".");
  return `${name.slice(0, dot)}.${hash.slice(0, 12)}${name.slice(dot)}`;
}

async function bundle(): Promise<Uint8Array> {
  const tmp = await Deno.makeTempDir({ prefix: "repolm-bundle-" });
  try {
    const out = `${tmp}/app.js`;
    const cmd = new Deno.Command(Deno.execPath(), {
      args: [
        "bundle",
        "--quiet",
        "--check",
        "--platform",
        "browser",
        "--minify",
        "--output",
        out,
        new URL("src/main.ts", STATIC).pathname,
      ],
      cwd: new URL(".", ROOT).pathname,
      stdout: "inherit",
      stderr: "inherit",
      env: { NO_COLOR: "1" },
    });
    const { success } = await cmd.output();
    if (!success) throw new Error("deno bundle failed (see the errors above)");
    return await Deno.readFile(out);
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

async function writeWithTwins(name: string, data: Uint8Array): Promise<void> {
  await Deno.writeFile(new URL(name, DIST), data);
  await Deno.writeFile(new URL(`${name}.gz`, DIST), gzipSync(data, { level: 9 }));
  await Deno.writeFile(
    new URL(`${name}.br`, DIST),
    brotliCompressSync(data, {
      params: {
        [constants.BROTLI_PARAM_QUALITY]: 11,
        [constants.BROTLI_PARAM_SIZE_HINT]: data.length,
      },
    }),
  );
}

/** Builds static/dist/ unless it is already current. Returns the manifest and whether it built. */
export async function buildStatic(
  options: { force?: boolean; quiet?: boolean } = {},
): Promise<{ manifest: Manifest; built: boolean }> {
  const hash = await sourceHash();
  const current = await readManifest();
  if (!options.force && current?.sourceHash === hash) {
    const files = [...Object.values(current.assets), "index.html"];
    const present = await Promise.all(files.map((f) => exists(new URL(f, DIST))));
    if (present.every(Boolean)) return { manifest: current, built: false };
  }
  const started = performance.now();
  await Deno.mkdir(DIST, { recursive: true });
  const inputs: [string, Uint8Array][] = [
    ["app.js", await bundle()],
    ["app.css", await Deno.readFile(new URL("app.css", STATIC))],
    ["favicon.svg", await Deno.readFile(new URL("favicon.svg", STATIC))],
  ];
  const assets: Record<string, string> = {};
  const types: Record<string, string> = {};
  for (const [name, data] of inputs) {
    const file = hashedName(name, await sha256(data));
    assets[name] = file;
    types[file] = TYPES[name.slice(name.lastIndexOf("."))];
    await writeWithTwins(file, data);
  }
  let html = await Deno.readTextFile(new URL("index.html", STATIC));
  // `deno fmt` writes `{{ name }}` in attributes and `{{name}}` elsewhere: accept both.
  html = html.replace(/\{\{\s*([\w.-]+)\s*\}\}/g, (whole, name: string) => {
    const file = assets[name];
    if (!file) throw new Error(`index.html names ${whole}, which the build does not produce`);
    return file;
  });
  if (html.includes("{{")) throw new Error("index.html has a placeholder the build could not fill");
  await writeWithTwins("index.html", new TextEncoder().encode(html));
  const manifest: Manifest = {
    sourceHash: hash,
    builtAt: new Date().toISOString(),
    assets,
    types,
    indexHash: (await sha256(html)).slice(0, 16),
  };
  const tmp = new URL(`manifest.json.${crypto.randomUUID()}`, DIST);
  await Deno.writeTextFile(tmp, JSON.stringify(manifest, null, 2) + "\n");
  await Deno.rename(tmp, new URL("manifest.json", DIST));
  await removeStale(manifest);
  if (!options.quiet) {
    const ms = Math.round(performance.now() - started);
    console.error(`static: built ${Object.values(assets).join(", ")} in ${ms} ms`);
  }
  return { manifest, built: true };
}

/** Deletes hashed files of older builds (kept for a minute so pages mid-load still get them). */
async function removeStale(manifest: Manifest): Promise<void> {
  const keep = new Set(["manifest.json", "index.html", ...Object.values(manifest.assets)]);
  const cutoff = Date.now() - 60_000;
  for await (const entry of Deno.readDir(DIST)) {
    const base = entry.name.replace(/\.(gz|br)$/, "");
    if (keep.has(base) || !entry.isFile) continue;
    const info = await Deno.stat(new URL(entry.name, DIST)).catch(() => null);
    if (info?.mtime && info.mtime.getTime() < cutoff) {
      await Deno.remove(new URL(entry.name, DIST)).catch(() => {});
    }
  }
}

async function watch(): Promise<void> {
  console.error("static: watching static/ for changes");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const distPath = new URL(".", DIST).pathname;
  for await (const event of Deno.watchFs(new URL(".", STATIC).pathname)) {
    if (event.paths.every((p) => p.startsWith(distPath))) continue;
    clearTimeout(timer);
    timer = setTimeout(() => buildStatic().catch((e) => console.error(`static: ${e.message}`)), 150);
  }
}

if (import.meta.main) {
  const force = Deno.args.includes("--force");
  try {
    const { built } = await buildStatic({ force });
    if (!built) console.error("static: up to date");
  } catch (e) {
    console.error(`static: ${(e as Error).message}`);
    if (!Deno.args.includes("--watch")) Deno.exit(1);
  }
  if (Deno.args.includes("--watch")) await watch();
}
