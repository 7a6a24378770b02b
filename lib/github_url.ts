import { AppError, BadRequestError } from "./errors.ts";

/** A GitHub repository named by a user, before its ref is resolved. */
export interface GitHubTarget {
  owner: string;
  name: string;
  ref?: string;
  subpath?: string;
}

const OWNER = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$/;
const NAME = /^[A-Za-z0-9._-]{1,100}$/;
/** One decoded segment of a URL's ref or subpath: no NUL, no backslash, no slash (`..%2F..` is not one). */
const SAFE_SEGMENT = /^[^\0\\/]+$/;
/** An explicit ref, which may have several segments (`feature/x`). */
const SAFE_REF = /^[^\0\\]+$/;

function invalid(
  message = "That is not a GitHub repository URL. Use https://github.com/OWNER/REPO or OWNER/REPO.",
) {
  return new BadRequestError("invalid_url", message);
}

/**
 * Parses every URL form API.md lists: https://github.com/OWNER/REPO, .../tree/REF[/SUBPATH],
 * a `.git` suffix, or OWNER/REPO. Any host other than the configured GitHub web hosts is refused
 * (422 unsupported_host) — the URL is never fetched, so no user input chooses where we connect.
 */
export function parseGitHubUrl(input: string, webHosts: string[]): GitHubTarget {
  const text = input.trim();
  if (!text || text.length > 2000 || /[\s\0]/.test(text)) throw invalid();
  const shorthand = /^([A-Za-z0-9-]+)\/([A-Za-z0-9._-]+?)(?:\.git)?\/?$/.exec(text);
  if (shorthand) return validated(shorthand[1], shorthand[2], []);
  const hasScheme = /^[a-z][a-z0-9+.-]*:/i.test(text);
  if (!hasScheme && !/^[^/]+\.[^/]+\//.test(text)) throw invalid();
  let url: URL;
  try {
    url = new URL(hasScheme ? text : `https://${text}`);
  } catch {
    throw invalid();
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw unsupportedHost(url.protocol);
  if (url.username || url.password) throw invalid("URLs with credentials in them are not accepted.");
  if (url.port || !webHosts.includes(url.hostname.toLowerCase())) throw unsupportedHost(url.hostname);
  const segments = url.pathname.split("/").filter(Boolean).map(safeDecode);
  if (segments.length < 2) throw invalid();
  const [owner, rawName, kind, ...rest] = segments;
  const name = rawName.replace(/\.git$/, "");
  if (kind === undefined) return validated(owner, name, []);
  if ((kind === "tree" || kind === "blob") && rest.length > 0) return validated(owner, name, rest);
  throw invalid("Only repository URLs and /tree/REF[/PATH] URLs are supported.");
}

function unsupportedHost(host: string): AppError {
  return new AppError(
    422,
    "unsupported_host",
    `Only GitHub repositories can be ingested (got "${
      host.slice(0, 100)
    }"). Upload an archive for other sources.`,
  );
}

function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw invalid();
  }
}

function validated(owner: string, name: string, treePath: string[]): GitHubTarget {
  if (!OWNER.test(owner) || !NAME.test(name) || name === "." || name === "..") throw invalid();
  if (treePath.some((s) => !SAFE_SEGMENT.test(s) || s === "." || s === "..")) throw invalid();
  const [ref, ...sub] = treePath;
  return {
    owner,
    name,
    ...(ref ? { ref } : {}),
    ...(sub.length ? { subpath: sub.join("/") } : {}),
  };
}

/** Applies an explicit `ref` from the request body: it wins over the URL's, and a URL path that
 * starts with a multi-segment ref (`tree/feature/x/src` with ref `feature/x`) keeps only the rest. */
export function withExplicitRef(target: GitHubTarget, ref: string | undefined): GitHubTarget {
  if (!ref) return target;
  // isWellFormed: a lone surrogate (valid in JSON) cannot be URL-encoded for the GitHub API
  if (!ref.isWellFormed() || !SAFE_REF.test(ref) || ref.split("/").some((s) => s === ".." || s === "")) {
    throw new BadRequestError("invalid_url", "That ref is not a valid branch, tag or commit name.");
  }
  const path = [target.ref, target.subpath].filter(Boolean).join("/");
  let subpath = target.subpath;
  if (path === ref) subpath = undefined;
  else if (path.startsWith(`${ref}/`)) subpath = path.slice(ref.length + 1);
  return { owner: target.owner, name: target.name, ref, ...(subpath ? { subpath } : {}) };
}
