/**
 * Chooses what a provider sees: file contents by priority within a token budget (never a blind
 * character cut), and retrieval passages from the ingest index for chat and concepts.
 */
import { readBlob } from "../blobs.ts";
import { byPriority, readTree, repoTitle, withinBudget } from "../digest.ts";
import type { Tree } from "../ingest.ts";
import { findFileBlob, type RepoRecord } from "../repos.ts";
import { searchRepo } from "../retrieval.ts";
import type { Passage, RepoContext } from "./types.ts";

export interface ContextBudget {
  /** Tokens of whole files, taken in priority order. */
  fileTokens: number;
  /** Retrieval query; no passages without one. */
  query?: string;
  passages?: number;
}

const decoder = new TextDecoder();

/** A file's text from KV, or null when it is not stored. */
export async function readFileText(kv: Deno.Kv, repo: RepoRecord, path: string): Promise<string | null> {
  const found = await findFileBlob(kv, repo, path);
  const bytes = found && await readBlob(kv, found.key, found.meta);
  return bytes ? decoder.decode(bytes) : null;
}

/** Lines `startLine`–`endLine` (1-based, inclusive) of a stored file, clamped to the file. */
export async function readPassage(
  kv: Deno.Kv,
  repo: RepoRecord,
  path: string,
  startLine: number,
  endLine: number,
): Promise<Passage | null> {
  const text = await readFileText(kv, repo, path);
  if (text === null) return null;
  const lines = text.split("\n");
  const start = Math.max(1, Math.min(startLine, lines.length));
  const end = Math.max(start, Math.min(endLine, lines.length));
  return { path, startLine: start, endLine: end, text: lines.slice(start - 1, end).join("\n") };
}

/** Builds the context for one generation or chat turn. */
export async function buildContext(
  kv: Deno.Kv,
  repo: RepoRecord,
  budget: ContextBudget,
  tree?: Tree,
): Promise<RepoContext> {
  tree ??= await readTree(kv, repo);
  const ordered = byPriority(tree.files);
  const files = [];
  for (const f of withinBudget(ordered, budget.fileTokens)) {
    const text = await readFileText(kv, repo, f.path);
    if (text !== null) files.push({ path: f.path, text, tokens: f.tokens });
  }
  const passages: Passage[] = [];
  const wanted = budget.passages ?? 8;
  if (budget.query?.trim()) {
    // twice as many hits as passages: a file a later archive entry dropped is still in the index
    for (const hit of await searchRepo(kv, repo, budget.query, wanted * 2)) {
      if (passages.length === wanted) break;
      const p = await readPassage(kv, repo, hit.path, hit.startLine, hit.endLine);
      if (p) passages.push({ ...p, score: hit.score });
    }
  }
  return { title: repoTitle(repo), source: repo.source, stats: repo.stats, tree: ordered, files, passages };
}
