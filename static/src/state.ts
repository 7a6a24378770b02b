/** What the page knows right now: the open repository, its file list and the chosen level. */
import type { Expertise, Repo, Tree } from "./api.ts";

export const state = {
  repo: null as Repo | null,
  tree: null as Tree | null,
  /** Every stored path, to tell real citations from look-alikes. */
  files: new Set<string>(),
  expertise: "intermediate" as Expertise,
  offline: false,
};

/** The repository's display name. */
export function repoTitle(repo: Repo): string {
  const s = repo.source;
  if (s.type === "github" && s.owner && s.name) return `${s.owner}/${s.name}`;
  return (s.filename ?? "Uploaded archive").replace(/\.(tar\.gz|tgz|tar|zip)$/i, "");
}

/** A file-name-safe version of the title, for exports. */
export function repoSlug(repo: Repo): string {
  return repoTitle(repo).replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^-+|-+$/g, "") || "repository";
}
