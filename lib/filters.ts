/**
 * Decides which archive files are stored. Each refusal has a reason from API.md:
 * ignored, vendored, secret, binary, too_large, symlink, limit.
 */
import picomatch from "picomatch";
import { isBinaryFileSync } from "isbinaryfile";

export type SkipReason = "binary" | "too_large" | "ignored" | "vendored" | "secret" | "limit" | "symlink";

const VENDORED_DIRS = new Set([
  "node_modules",
  "vendor",
  "third_party",
  "bower_components",
  "Pods",
  "jspm_packages",
]);
const IGNORED_DIRS = new Set([
  ".git",
  ".hg",
  ".svn",
  ".bzr",
  "dist",
  "build",
  "out",
  "target",
  ".next",
  ".nuxt",
  ".svelte-kit",
  ".output",
  "coverage",
  "__pycache__",
  ".venv",
  "venv",
  ".tox",
  ".mypy_cache",
  ".pytest_cache",
  ".gradle",
  ".idea",
  ".dart_tool",
  ".terraform",
  ".cache",
  ".parcel-cache",
  ".turbo",
]);
const LOCK_FILES = new Set([
  "package-lock.json",
  "yarn.lock",
  "pnpm-lock.yaml",
  "npm-shrinkwrap.json",
  "bun.lockb",
  "bun.lock",
  "deno.lock",
  "Cargo.lock",
  "poetry.lock",
  "Pipfile.lock",
  "Gemfile.lock",
  "composer.lock",
  "go.sum",
  "mix.lock",
  "pubspec.lock",
  "packages.lock.json",
  "flake.lock",
  "uv.lock",
]);
const GENERATED = [
  /\.min\.(js|css|mjs)$/,
  /\.map$/,
  /\.pb\.go$/,
  /_pb2\.py$/,
  /\.g\.dart$/,
  /\.generated\./,
  /\.bundle\.js$/,
];
const SECRET_NAMES = [
  /^\.env(\..+)?$/,
  /\.(pem|key|p12|pfx|jks|keystore|kdbx|ppk|asc)$/i,
  /^id_(rsa|dsa|ecdsa|ed25519)(\.pub)?$/,
  /^\.(npmrc|pypirc|netrc|htpasswd|pgpass)$/,
  /^credentials(\..+)?$/i,
  /^secrets?\.(json|ya?ml|toml)$/i,
  /^service[-_]?account.*\.json$/i,
];
const SECRET_TEMPLATES = /^\.env\.(example|sample|template|dist)$/;
const SECRET_CONTENT = [
  /-----BEGIN [A-Z ]*PRIVATE KEY-----/,
  /\bAKIA[0-9A-Z]{16}\b/,
  /\bgh[pousr]_[A-Za-z0-9]{36}\b/,
];
/** How much of a file the secret patterns look at when they get bytes rather than text. */
const SECRET_SCAN_BYTES = 256 * 1024;
const BINARY_EXT =
  /\.(png|jpe?g|gif|bmp|ico|webp|avif|tiff?|psd|pdf|zip|gz|tgz|bz2|xz|7z|rar|jar|war|class|exe|dll|so|dylib|a|o|obj|wasm|woff2?|ttf|otf|eot|mp[34]|mov|avi|webm|ogg|wav|flac|sqlite3?|db|bin|dat|pyc)$/i;

export interface FilterOptions {
  include?: string[];
  exclude?: string[];
  subpath?: string;
}

/**
 * A path filter built once per ingest from the user's globs and the default ignore list. A path
 * the user's `include` names explicitly bypasses the default ignores, never the secret rules.
 */
export function pathFilter(options: FilterOptions): (path: string) => SkipReason | null {
  const glob = { dot: true };
  const include = options.include?.length ? picomatch(options.include, glob) : null;
  const exclude = options.exclude?.length ? picomatch(options.exclude, glob) : null;
  return (path) => {
    const segments = path.split("/");
    const name = segments[segments.length - 1];
    const dirs = segments.slice(0, -1);
    if (include && !include(path)) return "ignored";
    if (exclude?.(path)) return "ignored";
    if (!SECRET_TEMPLATES.test(name) && SECRET_NAMES.some((re) => re.test(name))) return "secret";
    if (!include) {
      if (dirs.some((d) => VENDORED_DIRS.has(d))) return "vendored";
      if (dirs.some((d) => IGNORED_DIRS.has(d))) return "ignored";
      if (LOCK_FILES.has(name) || GENERATED.some((re) => re.test(name))) return "ignored";
    }
    if (BINARY_EXT.test(name)) return "binary";
    return null;
  };
}

/**
 * Content checks, for a file that passed `pathFilter`: binary sniffing and embedded private keys.
 * `text` is the file already decoded, when the caller has it (saves decoding it twice).
 */
export function contentFilter(bytes: Uint8Array, text?: string): SkipReason | null {
  const head = bytes.subarray(0, 8192);
  if (head.byteLength && isBinaryFileSync(head as unknown as Buffer)) return "binary";
  const scanned = text ?? new TextDecoder().decode(bytes.subarray(0, SECRET_SCAN_BYTES));
  if (SECRET_CONTENT.some((re) => re.test(scanned))) return "secret";
  return null;
}

/** Checks the user's glob patterns, so a bad one is a 400 rather than a failed job. */
export function validGlobs(patterns: string[]): boolean {
  try {
    for (const p of patterns) picomatch.makeRe(p);
    return true;
  } catch {
    return false;
  }
}
