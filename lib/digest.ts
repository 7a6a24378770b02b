/**
 * The repo digest: a plain-text summary, the tree, then file contents in priority order, trimmed
 * to a token budget. Streamed: each file is read from KV only when the client pulls for more.
 */
import { readBlob } from "./blobs.ts";
import { keys } from "./keys.ts";
import type { Tree, TreeFile } from "./ingest.ts";
import { findFileBlob, type RepoRecord } from "./repos.ts";

/** The stored tree of a ready repo. */
export async function readTree(kv: Deno.Kv, repo: RepoRecord): Promise<Tree> {
  const bytes = await readBlob(kv, keys.repoTree(repo.id, repo.gen));
  return bytes ? JSON.parse(new TextDecoder().decode(bytes)) : { files: [], skipped: [] };
}

/** Files in the order a reader should see them: priority first, then path. */
export function byPriority(files: TreeFile[]): TreeFile[] {
  return [...files].sort((a, b) => b.priority - a.priority || a.path.localeCompare(b.path));
}

/** The files that fit a token budget, taken in priority order (a file too big for what is left is passed over). */
export function withinBudget(files: TreeFile[], maxTokens: number | undefined): TreeFile[] {
  if (maxTokens === undefined) return files;
  const chosen: TreeFile[] = [];
  let used = 0;
  for (const f of files) {
    if (used + f.tokens > maxTokens) continue;
    chosen.push(f);
    used += f.tokens;
  }
  return chosen;
}

/** A repo's title for people: owner/name@ref or the uploaded file's name. */
export function repoTitle(repo: RepoRecord): string {
  const s = repo.source;
  return s.type === "github"
    ? `${s.owner}/${s.name}@${s.ref} (${s.sha?.slice(0, 7)})`
    : s.filename ?? repo.id;
}

/** The digest as a text stream. */
export function digestStream(
  kv: Deno.Kv,
  repo: RepoRecord,
  tree: Tree,
  maxTokens?: number,
): ReadableStream<Uint8Array> {
  const ordered = byPriority(tree.files);
  const chosen = withinBudget(ordered, maxTokens);
  const encoder = new TextEncoder();
  const langs = Object.entries(repo.stats.languages).sort((a, b) => b[1] - a[1]).slice(0, 8)
    .map(([name, bytes]) => `${name} ${(bytes / 1024).toFixed(0)} KB`).join(", ");
  const header = [
    `# ${repoTitle(repo)}`,
    "",
    `Files: ${repo.stats.files} stored, ${repo.stats.skipped} skipped. Tokens: ${repo.stats.tokens}.`,
    `Languages: ${langs || "none"}.`,
    maxTokens === undefined
      ? "Contents: every stored file, most important first."
      : `Contents: ${chosen.length} of ${ordered.length} files, most important first, within ${maxTokens} tokens.`,
    "",
    "## Tree",
    ...tree.files.map((f) => `${f.path} (${f.tokens} tokens)`),
    "",
    "## Files",
    "",
  ].join("\n");
  let next = 0;
  return new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(encoder.encode(header));
    },
    async pull(c) {
      if (next >= chosen.length) return c.close();
      const file = chosen[next++];
      const found = await findFileBlob(kv, repo, file.path);
      const bytes = found && await readBlob(kv, found.key, found.meta);
      const body = bytes ? new TextDecoder().decode(bytes) : "";
      c.enqueue(encoder.encode(`===== ${file.path} =====\n${body}${body.endsWith("\n") ? "" : "\n"}\n`));
    },
  }, { highWaterMark: 0 });
}
