/// <reference lib="dom" />
/** The repository header (name, source, stats, languages, digest, share) and the file tree. */
import { getJson, type Repo, request, type Tree, type TreeFile } from "./api.ts";
import { byId, h, toast } from "./dom.ts";
import { openFile } from "./file_view.ts";
import { formatBytes, formatCompact, formatCount } from "./format.ts";
import { showError } from "./notices.ts";
import { repoTitle, state } from "./state.ts";

/** Fills the header and loads the tree of a ready repository. */
export async function showRepo(repo: Repo): Promise<void> {
  state.repo = repo;
  byId("start").hidden = true;
  byId("repo").hidden = false;
  byId("repo").dataset.repoId = repo.id;
  const title = repoTitle(repo);
  document.title = `${title} · RepoLM`;
  byId("repo-title").textContent = title;
  const s = repo.source;
  const source = byId("repo-source");
  if (s.type === "github") {
    const parts = [
      s.ref ? `ref ${s.ref}` : null,
      s.sha ? `commit ${s.sha.slice(0, 7)}` : null,
      s.subpath ? `folder ${s.subpath}` : null,
    ];
    source.replaceChildren(
      h("a", {
        href: `https://github.com/${s.owner}/${s.name}`,
        target: "_blank",
        rel: "noopener noreferrer",
      }, "GitHub"),
      ` · ${parts.filter(Boolean).join(" · ")}`,
    );
  } else source.textContent = `Uploaded archive · ${s.filename ?? ""}`;

  const stats = repo.stats;
  const stat = (label: string, value: string, title?: string) =>
    h("div", {}, h("dt", {}, label), h("dd", { title }, value));
  byId("repo-stats").replaceChildren(
    stat("Files", formatCount(stats.files)),
    stat("Skipped", formatCount(stats.skipped)),
    stat("Size", formatBytes(stats.bytes)),
    stat("Tokens", formatCompact(stats.tokens), `${formatCount(stats.tokens)} tokens`),
  );
  const langs = Object.entries(stats.languages).sort((a, b) => b[1] - a[1]);
  const total = langs.reduce((sum, [, bytes]) => sum + bytes, 0) || 1;
  const shown = langs.slice(0, 6);
  const rest = langs.slice(6).reduce((sum, [, bytes]) => sum + bytes, 0);
  byId("repo-langs").replaceChildren(
    ...shown.map(([name, bytes]) =>
      h("li", {}, h("span", { class: "lang-name" }, name), ` ${percent(bytes / total)}`)
    ),
    ...(rest ? [h("li", {}, h("span", { class: "lang-name" }, "Other"), ` ${percent(rest / total)}`)] : []),
  );
  await loadTree(repo);
}

function percent(x: number): string {
  return x < 0.01 ? "<1%" : `${Math.round(x * 100)}%`;
}

async function loadTree(repo: Repo): Promise<void> {
  const area = byId("tree");
  area.replaceChildren(h("p", { class: "muted" }, "Loading the file list…"));
  try {
    const tree = await getJson<Tree>(`/api/repos/${encodeURIComponent(repo.id)}/tree`);
    state.tree = tree;
    state.files = new Set(tree.files.map((f) => f.path));
    renderTree(area, tree.files);
    renderSkipped(tree.skipped);
  } catch (e) {
    const notice = h("div");
    area.replaceChildren(notice);
    showError(notice, e, () => loadTree(repo));
  }
}

interface Dir {
  dirs: Map<string, Dir>;
  files: TreeFile[];
  count: number;
}

function buildDirs(files: TreeFile[]): Dir {
  const root: Dir = { dirs: new Map(), files: [], count: 0 };
  for (const file of files) {
    const parts = file.path.split("/");
    let dir = root;
    root.count++;
    for (const part of parts.slice(0, -1)) {
      let next = dir.dirs.get(part);
      if (!next) dir.dirs.set(part, next = { dirs: new Map(), files: [], count: 0 });
      next.count++;
      dir = next;
    }
    dir.files.push(file);
  }
  return root;
}

function renderTree(area: HTMLElement, files: TreeFile[]): void {
  if (!files.length) {
    area.replaceChildren(h("p", { class: "muted" }, "No readable files were kept."));
    return;
  }
  const root = buildDirs(files);
  // Open the top level; deeper folders render their contents when first opened (big trees stay light).
  area.replaceChildren(dirList(root, ""));
}

function dirList(dir: Dir, prefix: string): HTMLUListElement {
  const ul = h("ul", { role: "list" });
  const names = [...dir.dirs.keys()].sort((a, b) => a.localeCompare(b));
  for (const name of names) {
    const sub = dir.dirs.get(name)!;
    const details = h(
      "details",
      {},
      h("summary", { title: `${prefix}${name}/ (${sub.count} files)` }, h("span", { class: "dir" }, name)),
    );
    details.addEventListener("toggle", () => {
      if (details.open && details.children.length === 1) details.append(dirList(sub, `${prefix}${name}/`));
    }, { passive: true });
    ul.append(h("li", {}, details));
  }
  for (const file of [...dir.files].sort((a, b) => a.path.localeCompare(b.path))) {
    const name = file.path.slice(prefix.length);
    ul.append(h(
      "li",
      {},
      h("button", {
        type: "button",
        class: "file",
        "data-path": file.path,
        title: `${file.path} · ${formatBytes(file.bytes)}${file.language ? ` · ${file.language}` : ""}`,
        onclick: () => openFile(file.path),
      }, name),
    ));
  }
  return ul;
}

/** Opens the folders leading to `path` so its button exists and can be marked. */
export function revealInTree(path: string): void {
  const parts = path.split("/").slice(0, -1);
  let scope: ParentNode = byId("tree");
  for (const part of parts) {
    const details = [...scope.querySelectorAll<HTMLDetailsElement>(":scope > ul > li > details")]
      .find((d) => d.querySelector("summary")?.textContent === part);
    if (!details) return;
    if (!details.open) {
      details.open = true;
      details.dispatchEvent(new Event("toggle"));
    }
    scope = details;
  }
}

const REASONS: Record<string, string> = {
  binary: "binary",
  too_large: "too large",
  ignored: "ignored",
  vendored: "vendored or generated",
  secret: "may hold secrets",
  limit: "over the file limit",
  symlink: "symbolic link",
};

function renderSkipped(skipped: Tree["skipped"]): void {
  const details = byId<HTMLDetailsElement>("skipped");
  details.hidden = skipped.length === 0;
  byId("skipped-summary").textContent = `${formatCount(skipped.length)} skipped`;
  byId("skipped-list").replaceChildren(
    ...skipped.slice(0, 500).map((s) =>
      h(
        "li",
        {},
        h("span", { class: "path" }, s.path),
        h("span", { class: "muted" }, ` ${REASONS[s.reason] ?? s.reason}`),
      )
    ),
    ...(skipped.length > 500
      ? [h("li", { class: "muted" }, `…and ${formatCount(skipped.length - 500)} more`)]
      : []),
  );
}

/**
 * Copies the digest. The clipboard write starts inside the click (a ClipboardItem holding a
 * promise) so the browser keeps the user's permission while a large digest downloads.
 */
export async function copyDigest(): Promise<void> {
  const repo = state.repo;
  if (!repo) return;
  const button = byId<HTMLButtonElement>("copy-digest");
  button.disabled = true;
  button.textContent = "Copying…";
  const text = request(`/api/repos/${encodeURIComponent(repo.id)}/digest`).then((r) => r.text());
  try {
    if (typeof ClipboardItem !== "undefined" && navigator.clipboard?.write) {
      const blob = text.then((t) => new Blob([t], { type: "text/plain" }));
      await navigator.clipboard.write([new ClipboardItem({ "text/plain": blob })]);
    } else {
      await navigator.clipboard.writeText(await text);
    }
    const t = await text;
    toast(
      `Digest copied: ${
        formatBytes(new TextEncoder().encode(t).length)
      } of text, ready to paste into another tool.`,
    );
  } catch (e) {
    const area = byId("alert");
    if ((e as Error).name === "NotAllowedError") {
      toast("The browser did not allow copying. Try again, or allow clipboard access for this site.");
    } else showError(area, e, copyDigest);
  } finally {
    button.disabled = false;
    button.textContent = "Copy digest";
  }
}

/** Copies the current address (a /r/ or /a/ share link, with the open file and lines). */
export async function copyShareLink(): Promise<void> {
  const url = location.origin + location.pathname + location.search;
  try {
    await navigator.clipboard.writeText(url);
    toast(`Link copied: ${url}`);
  } catch {
    toast(`Share this link: ${url}`);
  }
}
