/// <reference lib="dom" />
/**
 * The file view: a file with line numbers; click a number to select a line, shift-click to
 * extend; cited lines are selected and scrolled to. "Ask about these lines" hands the selection
 * to the chat. Contents are only ever set as text.
 */
import { fileUrl, request } from "./api.ts";
import { byId, h } from "./dom.ts";
import type { Citation } from "./markdown.ts";
import { showError } from "./notices.ts";
import { revealInTree } from "./repo_view.ts";
import { state } from "./state.ts";

export interface LineRange {
  start: number;
  end: number;
}

let current: { path: string; lines: number } | null = null;
let selected: LineRange | null = null;
let anchor: number | null = null;
let loading: AbortController | null = null;
/** What had focus when the file was opened (a citation, a tree entry), to go back to on close. */
let opener: HTMLElement | null = null;
/** The file (and lines) being shown or opened, for the address bar. */
let shownFile: { path: string; lines?: LineRange } | null = null;
let askHandler: (sel: { path: string; startLine: number; endLine: number }) => void = () => {};
let changeHandler: () => void = () => {};

/** The open file's path, if any. */
export function openPath(): string | null {
  return current?.path ?? null;
}

/** The open file as address parameters: `{file, lines: "12-20"}`, or nothing when none is open. */
export function fileParams(): Record<string, string> {
  if (!shownFile) return {};
  const { path, lines } = shownFile;
  return lines ? { file: path, lines: `${lines.start}-${lines.end}` } : { file: path };
}

function setShown(file: typeof shownFile): void {
  shownFile = file;
  changeHandler();
}

/** `"12-20"` → {start: 12, end: 20}. */
export function parseLines(text: string | null): LineRange | undefined {
  const m = /^(\d+)(?:-(\d+))?$/.exec(text ?? "");
  if (!m) return undefined;
  const start = Number(m[1]);
  const end = m[2] ? Number(m[2]) : start;
  return { start: Math.min(start, end), end: Math.max(start, end) };
}

/** A link to a file (and lines) of the open repository that opens in the file view. */
export function citationLink(c: Citation, label: string): HTMLAnchorElement {
  const repoId = state.repo?.id ?? "";
  const params = new URLSearchParams({ file: c.path });
  if (c.startLine) params.set("lines", `${c.startLine}-${c.endLine ?? c.startLine}`);
  const a = h("a", {
    class: "cite",
    href: `/r/${encodeURIComponent(repoId)}?${params}`,
    "data-path": c.path,
    "data-start": c.startLine,
    "data-end": c.endLine,
    title: c.startLine ? `Open ${c.path} at line ${c.startLine}` : `Open ${c.path}`,
  }, label);
  a.addEventListener("click", (e) => {
    if (e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return; // let new-tab clicks through
    e.preventDefault();
    openFile(c.path, c.startLine ? { start: c.startLine, end: c.endLine ?? c.startLine } : undefined);
  });
  return a;
}

/** Opens `path`; selects and scrolls to `range` when given. */
export async function openFile(path: string, range?: LineRange): Promise<void> {
  const repo = state.repo;
  if (!repo) return;
  const panel = byId("file-panel");
  const body = byId("file-body");
  const active = document.activeElement;
  if (active instanceof HTMLElement && active !== document.body && !panel.contains(active)) opener = active;
  panel.hidden = false;
  byId("workspace").classList.add("with-file");
  markTree(path);
  if (current?.path === path && !loading) {
    if (range) select(range, true);
    return;
  }
  loading?.abort();
  const controller = new AbortController();
  loading = controller;
  current = null;
  selected = null;
  anchor = null;
  setShown({ path, lines: range });
  updateForm();
  byId("file-title").textContent = path;
  body.replaceChildren(h("p", { class: "muted loading" }, "Opening the file…"));
  panel.scrollIntoView({ block: "nearest" });
  try {
    const res = await request(fileUrl(repo.id, path), { signal: controller.signal });
    const text = await res.text();
    if (controller.signal.aborted) return;
    renderLines(body, text);
    current = { path, lines: body.querySelectorAll("tr").length };
    body.dataset.path = path;
    if (range) select(range, true);
    else body.scrollTop = 0;
  } catch (e) {
    if ((e as Error).name === "AbortError") return;
    const area = h("div");
    body.replaceChildren(area);
    showError(area, e, () => openFile(path, range));
  } finally {
    if (loading === controller) loading = null;
  }
}

function renderLines(body: HTMLElement, text: string): void {
  const lines = text.replace(/\r\n/g, "\n").split("\n");
  if (lines.length > 1 && lines[lines.length - 1] === "") lines.pop();
  const tbody = h("tbody");
  const frag = document.createDocumentFragment();
  lines.forEach((line, i) => {
    const n = i + 1;
    frag.append(
      h(
        "tr",
        { id: `L${n}`, "data-line": n },
        h("td", { class: "ln", "data-line": n }, String(n)),
        h("td", { class: "src" }, line),
      ),
    );
  });
  tbody.append(frag);
  body.replaceChildren(
    h("table", { class: "code", "aria-label": `Lines of ${byId("file-title").textContent}` }, tbody),
  );
}

function select(range: LineRange, scroll: boolean): void {
  if (!current) return;
  const start = Math.max(1, Math.min(range.start, range.end, current.lines));
  const end = Math.min(current.lines, Math.max(range.start, range.end));
  const body = byId("file-body");
  if (selected) {
    for (let n = selected.start; n <= selected.end; n++) {
      body.querySelector(`#L${n}`)?.classList.remove("selected");
    }
  }
  selected = { start, end };
  setShown({ path: current.path, lines: selected });
  for (let n = start; n <= end; n++) body.querySelector(`#L${n}`)?.classList.add("selected");
  updateForm();
  if (scroll) {
    const row = body.querySelector<HTMLElement>(`#L${start}`);
    if (row) {
      // Centre the first selected line inside the scrolling code box, then bring the panel into view.
      body.scrollTop = Math.max(0, row.offsetTop - body.clientHeight / 3);
      byId("file-panel").scrollIntoView({ block: "nearest" });
    }
  }
}

function updateForm(): void {
  const start = byId<HTMLInputElement>("line-start");
  const end = byId<HTMLInputElement>("line-end");
  start.value = selected ? String(selected.start) : "";
  end.value = selected ? String(selected.end) : "";
  start.max = end.max = String(current?.lines ?? 1);
  byId<HTMLButtonElement>("ask-lines").disabled = !selected;
}

function markTree(path: string): void {
  for (const el of document.querySelectorAll("#tree [aria-current]")) el.removeAttribute("aria-current");
  if (!path) return;
  revealInTree(path);
  document.querySelector(`#tree button[data-path="${CSS.escape(path)}"]`)?.setAttribute(
    "aria-current",
    "true",
  );
}

/** Closes the file view. */
export function closeFile(): void {
  loading?.abort();
  current = null;
  selected = null;
  byId("file-panel").hidden = true;
  byId("workspace").classList.remove("with-file");
  byId("file-body").replaceChildren();
  markTree("");
  setShown(null);
}

/**
 * Wires line selection, the line inputs, "Ask about these lines" and the close button; `onChange`
 * runs whenever the open file or its selected lines change (main keeps the address in step).
 */
export function initFileView(onAsk: typeof askHandler, onChange: () => void): void {
  askHandler = onAsk;
  changeHandler = onChange;
  byId("file-body").addEventListener("click", (e) => {
    const cell = (e.target as HTMLElement).closest<HTMLElement>("td.ln");
    if (!cell) return;
    const n = Number(cell.dataset.line);
    if (e.shiftKey && anchor !== null) select({ start: anchor, end: n }, false);
    else {
      anchor = n;
      select({ start: n, end: n }, false);
    }
  });
  const fromInputs = () => {
    const s = Number(byId<HTMLInputElement>("line-start").value);
    const t = Number(byId<HTMLInputElement>("line-end").value || s);
    if (s > 0 && t > 0) {
      anchor = s;
      select({ start: s, end: t }, true);
    }
  };
  byId("line-start").addEventListener("change", fromInputs);
  byId("line-end").addEventListener("change", fromInputs);
  byId("line-form").addEventListener("submit", (e) => {
    e.preventDefault();
    if (!current || !selected) return;
    askHandler({ path: current.path, startLine: selected.start, endLine: selected.end });
  });
  byId("file-close").addEventListener("click", () => {
    closeFile();
    // Focus would stay on the now hidden button: back to what opened the file if it is still shown.
    const back = opener?.isConnected && opener.offsetParent ? opener : byId("main");
    opener = null;
    back.focus();
  });
}
