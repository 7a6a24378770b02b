/**
 * Reading READMEs without a model: marked's lexer splits the Markdown into tokens, and only prose,
 * code, lists and tables are kept — badges, images, raw HTML and relative links are dropped, since
 * they mean nothing outside the repository's own page.
 */
import { Lexer, type Token, type Tokens } from "marked";

/** A README section worth quoting, re-rendered as safe Markdown. */
export interface ReadmeSection {
  title: string;
  markdown: string;
}

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: " " };

/** Decodes the HTML entities READMEs use (named basics and numeric ones). */
function decodeEntities(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (whole, code: string) => {
    if (code[0] !== "#") return ENTITIES[code.toLowerCase()] ?? whole;
    const n = code[1] === "x" || code[1] === "X" ? parseInt(code.slice(2), 16) : parseInt(code.slice(1), 10);
    return Number.isFinite(n) && n > 0 && n < 0x110000 ? String.fromCodePoint(n) : whole;
  });
}

/** Collapses runs of whitespace (tokens keep the source's line breaks) and drops footnote marks. */
function squash(text: string): string {
  return text.replace(/\[\^[^\]\s]+\]/g, "").replace(/\s+/g, " ").trim();
}

/** GitHub's alert marker (`> [!NOTE]`) as it reads in plain Markdown. */
function alertLabel(text: string): string {
  return text.replace(
    /^\[!(NOTE|TIP|IMPORTANT|WARNING|CAUTION)\]\s*/i,
    (_, kind: string) => `**${kind[0]}${kind.slice(1).toLowerCase()}:** `,
  );
}

/**
 * Renders inline tokens. `markdown` keeps code spans, emphasis and absolute links; `plain` keeps
 * only words (code spans stay in backticks so identifiers remain recognisable).
 */
function inline(tokens: Token[] | undefined, mode: "markdown" | "plain"): string {
  let out = "";
  for (const t of tokens ?? []) {
    switch (t.type) {
      case "text":
        out += "tokens" in t && t.tokens?.length
          ? inline(t.tokens, mode)
          : mode === "plain"
          ? decodeEntities(t.text)
          : t.text;
        break;
      case "escape":
        out += mode === "plain" ? t.text : `\\${t.text}`;
        break;
      case "codespan":
        out += mode === "plain" ? `\`${decodeEntities(t.text)}\`` : t.raw;
        break;
      case "strong":
      case "em":
      case "del": {
        const inner = inline(t.tokens, mode);
        const mark = mode === "plain" || !inner.trim()
          ? ""
          : t.type === "strong"
          ? "**"
          : t.type === "em"
          ? "_"
          : "~~";
        out += `${mark}${inner}${mark}`;
        break;
      }
      case "link": {
        const inner = inline(t.tokens, mode);
        const absolute = /^https?:\/\//.test(t.href);
        out += mode === "markdown" && absolute && inner.trim() ? `[${inner}](${t.href})` : inner;
        break;
      }
      case "br":
        out += " ";
        break;
        // images (badges, logos) and inline HTML carry nothing readable here
    }
  }
  return out;
}

/** Text of an HTML block, one entry per visual line, for READMEs that put their tagline in `<p>`. */
function htmlLines(html: string): string[] {
  return html
    // an unclosed `<!--` hides the rest, and `[^<>]` keeps each tag match from rescanning the text:
    // both stay linear however many unclosed starts a README has
    .replace(/<!--(?:[^-]|-(?!->))*(?:-->|$)/g, "")
    .replace(
      /<(br|\/?p|\/?div|\/?h\d|\/?li|\/?ul|\/?table|\/?tr|\/?td|\/?summary|\/?details)\b[^<>]*>/gi,
      "\n",
    )
    .replace(/<[^<>]*>/g, "")
    .split("\n")
    .map((line) => squash(decodeEntities(line)))
    .filter(Boolean);
}

/** Whether a line reads as a sentence about the project rather than a title, a nav bar or a badge row. */
function isProse(text: string): boolean {
  const words = text.split(/\s+/).filter((w) => /[A-Za-z]{2}/.test(w));
  if (words.length < 5 || text.length < 30) return false;
  if (/[•|·]/.test(text) && words.length < 12) return false;
  // A line that only points elsewhere ("Install it with:", "For terms see: glossary") is not a description.
  return !/(:|\b(as follows|the following|below)\.?)$/i.test(text) && !/:\s*\S+(\s+\S+){0,2}$/.test(text);
}

const HOW_TO_SECTIONS =
  /^(install|usage|getting started|get started|quick ?start|setup|set up|build|running|run |develop|how to use|basic usage|examples?$|example usage)/i;

/** The README's tokens with each block's enclosing heading, so sections can be skipped or picked. */
function lex(markdown: string): Token[] {
  try {
    return new Lexer({ gfm: true }).lex(markdown);
  } catch {
    return [];
  }
}

/** Sections whose prose describes the project, as opposed to how to install, use or support it. */
const DESCRIPTIVE_SECTIONS =
  /^(about|what|why|overview|introduction|intro|philosophy|description|motivation|features|highlights|summary|goals|background|how it works|the idea)\b/i;

/**
 * The README's description of the project: up to `max` prose paragraphs from its opening and from
 * sections such as "About" or "Philosophy", skipping titles, badge rows, navigation, install and
 * usage sections, and paragraphs `isRepeat` rejects (those restating the manifest's description).
 */
export function readmeIntro(
  markdown: string,
  max = 3,
  isRepeat: (text: string) => boolean = () => false,
): string[] {
  const found: string[] = [];
  let sectionDepth = 0;
  let allowed = true;
  let headings = 0;
  const add = (text: string) => {
    const clean = squash(text);
    if (isProse(clean) && !found.includes(clean) && !isRepeat(clean)) found.push(clean);
  };
  for (const t of lex(markdown)) {
    if (found.length >= max) break;
    if (t.type === "heading") {
      headings++;
      if (sectionDepth && t.depth > sectionDepth) continue;
      // The first top-level heading is the project's title: what follows it, up to the next
      // heading of any level, is the opening.
      const title = headings === 1 && t.depth === 1;
      allowed = title || DESCRIPTIVE_SECTIONS.test(squash(inline(t.tokens, "plain")));
      sectionDepth = title ? 0 : t.depth;
      continue;
    }
    if (!allowed) continue;
    // Footnote definitions and GitHub alerts are asides, not the description.
    if (t.type === "paragraph" && !t.raw.startsWith("[^")) add(inline(t.tokens, "plain"));
    else if (t.type === "blockquote" && !/^>\s*\[!/.test(t.raw)) {
      for (const inner of t.tokens ?? []) if (inner.type === "paragraph") add(inline(inner.tokens, "plain"));
    } // Centered HTML headers hold the tagline of many READMEs; later HTML is layout, not prose.
    else if (t.type === "html" && !found.length && headings <= 1) {
      for (const line of htmlLines(t.text)) add(line);
    }
  }
  return found;
}

/** Wraps `code` in a fence longer than any backtick run inside it. */
export function fence(code: string, lang = ""): string {
  const longest = Math.max(0, ...(code.match(/`+/g) ?? []).map((run) => run.length));
  const marks = "`".repeat(Math.max(3, longest + 1));
  return `${marks}${lang}\n${code.replace(/\n+$/, "")}\n${marks}`;
}

/** Re-renders block tokens as Markdown without HTML, images or relative links; `undefined` drops a block. */
function block(t: Token): string | undefined {
  switch (t.type) {
    case "paragraph": {
      if (t.raw.startsWith("[^")) return undefined;
      const text = alertLabel(inline(t.tokens, "markdown").trim());
      return text || undefined;
    }
    case "heading":
      return `**${squash(inline(t.tokens, "markdown"))}**`;
    case "code": {
      const lines = t.text.split("\n");
      const code = lines.length > 25 ? [...lines.slice(0, 24), "// …"].join("\n") : t.text;
      return fence(code, (t.lang ?? "").split(/\s/)[0]);
    }
    case "list":
      return (t as Tokens.List).items.map((item, i) => {
        const marker = t.ordered ? `${(Number(t.start) || 1) + i}.` : "-";
        const parts = item.tokens.map((inner) =>
          inner.type === "text" ? squash(inline(inner.tokens ?? [inner], "markdown")) : block(inner)
        ).filter((p): p is string => Boolean(p));
        const [first = "", ...rest] = parts;
        // Nested blocks are indented to the item's text, which is what makes them belong to it.
        const pad = " ".repeat(marker.length + 1);
        const body = rest.map((r) => r.split("\n").map((l) => (l ? `${pad}${l}` : l)).join("\n"));
        return [`${marker} ${first}`, ...body].join("\n");
      }).join("\n");
    case "blockquote": {
      const inner = (t.tokens ?? []).map((x) => block(x)).filter(Boolean).join("\n\n");
      return inner ? inner.split("\n").map((l) => `> ${l}`.trimEnd()).join("\n") : undefined;
    }
    case "table": {
      const table = t as Tokens.Table;
      const cell = (c: Tokens.TableCell) => squash(inline(c.tokens, "markdown")).replace(/\|/g, "\\|");
      const rows = [
        `| ${table.header.map(cell).join(" | ")} |`,
        `| ${table.header.map(() => "---").join(" | ")} |`,
        ...table.rows.slice(0, 12).map((r) => `| ${r.map(cell).join(" | ")} |`),
      ];
      return rows.join("\n");
    }
    default:
      return undefined;
  }
}

/**
 * The README's install / usage / getting-started sections (at most `max`), each cut to about
 * `maxChars` at a block boundary so a quoted section never ends inside a code fence.
 */
export function readmeSections(markdown: string, max = 3, maxChars = 1200): ReadmeSection[] {
  const tokens = lex(markdown);
  const sections: ReadmeSection[] = [];
  for (let i = 0; i < tokens.length && sections.length < max; i++) {
    const head = tokens[i];
    if (head.type !== "heading") continue;
    const title = squash(inline(head.tokens, "plain"));
    if (!HOW_TO_SECTIONS.test(title)) continue;
    const blocks: string[] = [];
    let size = 0;
    let cut = false;
    let j = i + 1;
    for (; j < tokens.length; j++) {
      const t = tokens[j];
      if (t.type === "heading" && t.depth <= head.depth) break;
      const text = block(t);
      if (!text) continue;
      if (size + text.length > maxChars && blocks.length) {
        cut = true;
        continue;
      }
      blocks.push(text);
      size += text.length;
    }
    // A lead-in whose code was cut away ("Things to know:") would dangle.
    while (cut && blocks.length > 1 && /:$/.test(blocks[blocks.length - 1])) blocks.pop();
    // A section holding only a link ("see the docs") says nothing worth quoting; a command does.
    if (blocks.some((b) => b.startsWith("```")) || size > 80) {
      if (cut) blocks.push("_(shortened)_");
      sections.push({ title, markdown: blocks.join("\n\n") });
    }
    i = j - 1;
  }
  return sections;
}

/** A one-line description of a Markdown file: its first heading, else its first prose line. */
export function markdownSummary(markdown: string): string | undefined {
  for (const t of lex(markdown)) {
    if (t.type === "heading") {
      const title = squash(inline(t.tokens, "plain"));
      if (title) return title;
    }
    if (t.type === "paragraph") {
      const text = squash(inline(t.tokens, "plain"));
      if (isProse(text)) return text;
    }
  }
  return undefined;
}
