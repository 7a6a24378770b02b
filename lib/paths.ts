/** Archive path checks: every stored path is relative, inside the repo, and free of NUL. */
import { utf8Length } from "./utf8.ts";

/** Longest path stored, in UTF-8 bytes; keeps every KV key under its 2 KiB limit. */
const MAX_PATH_BYTES = 1024;

/** True when `path` is at most MAX_PATH_BYTES long in UTF-8 (what a KV key counts). */
export function fitsPathLimit(path: string): boolean {
  return utf8Length(path) <= MAX_PATH_BYTES;
}

export type PathCheck = { ok: true; path: string } | { ok: false; reason: string };

/**
 * Normalises an archive entry's path, dropping `stripSegments` leading folders (codeload
 * archives have one top folder). `..`, absolute paths, drive letters and NUL are unsafe.
 */
export function checkArchivePath(raw: string, stripSegments: number): PathCheck {
  if (raw.includes("\0")) return { ok: false, reason: "contains a NUL byte" };
  const slashed = raw.replaceAll("\\", "/");
  if (slashed.startsWith("/") || /^[A-Za-z]:/.test(slashed)) {
    return { ok: false, reason: `is absolute (${raw.slice(0, 200)})` };
  }
  const segments = slashed.split("/").filter((s) => s !== "" && s !== ".");
  if (segments.includes("..")) return { ok: false, reason: `leaves the archive (${raw.slice(0, 200)})` };
  return { ok: true, path: segments.slice(stripSegments).join("/") };
}

/** True when `path` is `dir` itself or lies under it. */
export function isUnder(path: string, dir: string): boolean {
  return path === dir || path.startsWith(`${dir}/`);
}
