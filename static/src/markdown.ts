/// <reference lib="dom" />
/**
 * Markdown → sanitised DOM. Model output and README text are untrusted: marked renders, DOMPurify
 * removes scripts, handlers, `javascript:` URLs and anything the CSP would block anyway.
 */
import { Marked } from "marked";
import DOMPurify from "dompurify";

const marked = new Marked({ gfm: true, breaks: false, async: false });

const PURIFY = {
  RETURN_DOM_FRAGMENT: true as const,
  FORBID_TAGS: [
    "style",
    "img",
    "picture",
    "video",
    "audio",
    "source",
    "track",
    "iframe",
    "object",
    "embed",
    "form",
    "input",
    "button",
    "textarea",
    "select",
    "link",
    "meta",
    "base",
  ],
  FORBID_ATTR: ["style", "id", "name", "srcset", "formaction"],
};

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    const href = node.getAttribute("href") ?? "";
    if (/^https?:/i.test(href)) {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer nofollow");
    }
  }
});

/** Renders Markdown into `target`, replacing what was there. */
export function renderMarkdown(target: HTMLElement, markdown: string): void {
  const html = marked.parse(markdown) as string;
  target.replaceChildren(DOMPurify.sanitize(html, PURIFY));
}

/**
 * Coalesces renders of a growing text to one per animation frame, so a fast stream re-renders
 * (and re-sanitises) the whole Markdown at most ~60 times a second instead of per token.
 */
export function frameRenderer(render: () => void): () => void {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      render();
    });
  };
}

/** A `[path:12-34]` citation in text, as the prompts ask models to write them. */
const CITATION = /\[([^\[\]\s:]+(?:\/[^\[\]\s:]+)*)(?::(\d+)(?:\s*[-–]\s*(\d+))?)?\]/g;

export interface Citation {
  path: string;
  startLine?: number;
  endLine?: number;
}

/**
 * Turns citations in the rendered text into links made by `link`. Only paths the repository has are
 * linked (`known`), and only in text nodes outside links and code blocks, so nothing else changes.
 */
export function linkCitations(
  root: HTMLElement,
  known: (path: string) => boolean,
  link: (c: Citation, label: string) => HTMLElement,
): void {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {
    acceptNode(node) {
      const parent = node.parentElement;
      if (!parent || parent.closest("a, pre")) return NodeFilter.FILTER_REJECT;
      CITATION.lastIndex = 0;
      return CITATION.test(node.nodeValue ?? "") ? NodeFilter.FILTER_ACCEPT : NodeFilter.FILTER_SKIP;
    },
  });
  const nodes: Text[] = [];
  while (walker.nextNode()) nodes.push(walker.currentNode as Text);
  for (const node of nodes) {
    const text = node.nodeValue ?? "";
    const out: (string | Node)[] = [];
    let last = 0;
    CITATION.lastIndex = 0;
    for (let m = CITATION.exec(text); m; m = CITATION.exec(text)) {
      const path = m[1].replace(/^\.\//, "");
      if (!known(path)) continue;
      const startLine = m[2] ? Number(m[2]) : undefined;
      const endLine = m[3] ? Number(m[3]) : startLine;
      out.push(text.slice(last, m.index));
      const label = startLine
        ? `${path}:${startLine}${endLine && endLine !== startLine ? `–${endLine}` : ""}`
        : path;
      out.push(link({ path, startLine, endLine }, label));
      last = m.index + m[0].length;
    }
    if (!out.length) continue;
    out.push(text.slice(last));
    node.replaceWith(...out);
  }
  // `path/to/file.ts` in inline code is a citation too when the repository has that file.
  for (const code of root.querySelectorAll<HTMLElement>("code")) {
    if (code.closest("pre, a")) continue;
    const m = /^([^\s:]+)(?::(\d+)(?:[-–](\d+))?)?$/.exec(code.textContent ?? "");
    if (!m || !known(m[1].replace(/^\.\//, ""))) continue;
    const startLine = m[2] ? Number(m[2]) : undefined;
    const a = link(
      { path: m[1].replace(/^\.\//, ""), startLine, endLine: m[3] ? Number(m[3]) : startLine },
      "",
    );
    code.replaceWith(a);
    a.replaceChildren(code);
  }
}
