/**
 * The facts the offline provider writes from: purpose, languages, layout, entry points, commands,
 * key files, dependencies and exported symbols, all read from a RepoContext without a model.
 * Everything here is a pure function of the context, so the same repository gives the same text.
 */
import type { TreeFile } from "../ingest.ts";
import { markdownSummary, readmeIntro, type ReadmeSection, readmeSections } from "./offline_markdown.ts";
import {
  type Command,
  type CommandPurpose,
  type Dependency,
  type Manifest,
  parseCargoToml,
  parseComposerJson,
  parseDenoJson,
  parseGemfile,
  parseGemspec,
  parseGoMod,
  parseMakefile,
  parsePackageJson,
  parsePyproject,
  parseRequirements,
  parseSetupPy,
  pythonModuleFiles,
} from "./offline_manifests.ts";
import type { RepoContext } from "./types.ts";

/** The command shapes the writers read, re-exported so they import facts from one place. */
export type { Command, CommandPurpose };

/** An entry point resolved against the tree: `path` is the file to read, `declared` what the manifest names. */
export interface ResolvedEntryPoint {
  label: string;
  path: string;
  inTree: boolean;
  declared?: string;
}

/** A top-level folder: how many files it holds and what they likely are. */
export interface Folder {
  path: string;
  files: number;
  role: string;
}

/** A file worth naming, with what can be said about it in one line. */
export interface FileNote {
  path: string;
  language: string;
  tokens: number;
  /** One line on what the file is: its own doc comment or heading, else what it exports. */
  summary?: string;
  summaryFrom?: "doc" | "contents";
}

/** Everything the offline writers know about a repository. */
export interface RepoFacts {
  name: string;
  description?: string;
  version?: string;
  license?: string;
  /** The README's opening paragraphs, minus any that repeat `description`. */
  purpose: string[];
  readmePath?: string;
  howTo: ReadmeSection[];
  manifests: Manifest[];
  languages: { name: string; percent: number }[];
  folders: Folder[];
  rootFiles: string[];
  entryPoints: ResolvedEntryPoint[];
  commands: Command[];
  dependencies: Dependency[];
  keyFiles: FileNote[];
  largest: FileNote[];
  /** Names each file in the context defines for others, most important files first. */
  symbols: { path: string; names: string[] }[];
  totals: { files: number; tokens: number };
}

const MANIFEST_FILES =
  /^(package\.json|deno\.jsonc?|Cargo\.toml|pyproject\.toml|setup\.py|requirements\.txt|go\.mod|composer\.json|Gemfile|[\w.-]+\.gemspec|Makefile|GNUmakefile)$/;
const DECLARATION = /\.d\.[cm]?ts$/;
const LOW_VALUE =
  /(^|\/)(tests?|__tests__|spec|specs|fixtures?|testdata|examples?|samples?|docs?|benchmarks?|bench)\//i;
const TEST_NAME = /(\.|_)(test|spec)\.[a-z]+$|(^|\/)test_[^/]*\.py$/i;
const DATA =
  /^(JSON|JSON with Comments|JSON5|YAML|TOML|XML|CSV|TSV|SVG|INI|Text|Ignore List|Git Attributes|EditorConfig)$/;
const NOT_CODE =
  /^(Markdown|Text|JSON|JSON with Comments|JSON5|YAML|TOML|XML|CSV|TSV|SVG|INI|Ignore List|Git Attributes|EditorConfig|reStructuredText|AsciiDoc|Org|Diff|Public Key)$/;

function baseName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

function dirName(path: string): string {
  const i = path.lastIndexOf("/");
  return i === -1 ? "" : path.slice(0, i);
}

function join(dir: string, path: string): string {
  const parts = (dir ? `${dir}/${path}` : path).split("/");
  const out: string[] = [];
  for (const p of parts) {
    if (p === "" || p === ".") continue;
    if (p === "..") out.pop();
    else out.push(p);
  }
  return out.join("/");
}

/**
 * The folder the repository's own files sit in: the requested subpath, or the single top folder
 * every path shares (archives such as npm tarballs wrap everything in one).
 */
export function rootDir(ctx: RepoContext): string {
  const sub = ctx.source.subpath?.replace(/^\/+|\/+$/g, "");
  if (sub) return sub;
  const tops = new Set(ctx.tree.map((f) => (f.path.includes("/") ? f.path.split("/")[0] : "")));
  const [only] = tops;
  return tops.size === 1 && only ? only : "";
}

function relative(root: string, path: string): string {
  return root && path.startsWith(`${root}/`) ? path.slice(root.length + 1) : path;
}

/** Percent of bytes per language, largest first; languages under 1% are left out. */
export function languageShares(
  languages: Record<string, number>,
  tree: TreeFile[],
): { name: string; percent: number }[] {
  let bytes = languages;
  if (!Object.keys(bytes).length) {
    bytes = {};
    for (const f of tree) bytes[f.language] = (bytes[f.language] ?? 0) + f.bytes;
  }
  const total = Object.values(bytes).reduce((a, b) => a + b, 0);
  if (!total) return [];
  return Object.entries(bytes)
    .map(([name, b]) => ({ name, percent: Math.round((b / total) * 1000) / 10 }))
    .filter((l) => l.percent >= 1)
    .sort((a, b) => b.percent - a.percent);
}

const FOLDER_ROLES: [RegExp, string][] = [
  [/^(src|source|sources)$/i, "the source code"],
  [/^lib$/i, "library code"],
  [/^(tests?|__tests__|spec|specs|t)$/i, "tests"],
  [/^(e2e|integration)$/i, "end-to-end and integration tests"],
  [/^(docs?|documentation|website|site)$/i, "documentation"],
  [/^(examples?|samples?|demos?)$/i, "examples"],
  [/^(scripts|tools|tooling|hack|utils?)$/i, "helper scripts and tools"],
  [/^bin$/i, "executables (command-line entry points)"],
  [/^cmd$/i, "the program's commands (each subfolder builds one executable)"],
  [/^pkg$/i, "reusable packages"],
  [/^internal$/i, "internal packages not meant for outside use"],
  [/^(packages|crates|modules|libs)$/i, "the packages of a multi-package workspace"],
  [/^apps$/i, "the applications of a multi-package workspace"],
  [/^\.github$/i, "GitHub settings: CI workflows and issue templates"],
  [/^(\.circleci|\.gitlab|\.buildkite|ci)$/i, "continuous-integration settings"],
  [/^(public|static|assets|res|resources)$/i, "static assets"],
  [/^(config|configs|conf|settings)$/i, "configuration"],
  [/^(benches|benchmarks?|bench|perf)$/i, "benchmarks"],
  [/^(migrations|db|database|schema|prisma)$/i, "database schema and migrations"],
  [/^(routes|api|handlers|controllers|endpoints)$/i, "request handlers"],
  [/^(components|ui|views|pages|app)$/i, "user-interface code"],
  [/^(types|typings|@types)$/i, "type declarations"],
  [/^(locales?|i18n|translations|lang)$/i, "translations"],
  [/^(include|headers)$/i, "public headers"],
  [/^(deploy|deployment|infra|k8s|helm|terraform|docker)$/i, "deployment files"],
  [/^(fixtures|testdata|__fixtures__|__mocks__|mocks)$/i, "test data"],
  [/^vendor$/i, "vendored third-party code"],
];

/**
 * Top-level folders with file counts and what each likely holds: from its name, else from its
 * contents (`derived` marks compiled twins and type declarations, i.e. build output).
 */
export function folderLayout(
  files: { path: string; language: string }[],
  derived: Set<string> = new Set(),
): Folder[] {
  const byDir = new Map<
    string,
    { files: number; derived: number; languages: Map<string, number> }
  >();
  for (const f of files) {
    if (!f.path.includes("/")) continue;
    const dir = f.path.split("/")[0];
    const d = byDir.get(dir) ?? { files: 0, derived: 0, languages: new Map() };
    d.files++;
    if (derived.has(f.path)) d.derived++;
    d.languages.set(f.language, (d.languages.get(f.language) ?? 0) + 1);
    byDir.set(dir, d);
  }
  return [...byDir.entries()].map(([path, d]) => {
    const named = FOLDER_ROLES.find(([re]) => re.test(path))?.[1];
    const top = [...d.languages.entries()].sort((a, b) => b[1] - a[1]);
    const mostly = top[0] && top[0][1] / d.files >= 0.6 ? top[0][0] : undefined;
    let role: string;
    if (d.derived / d.files >= 0.6) role = "build output (compiled JavaScript and type declarations)";
    else if (named) {
      role = mostly && !NOT_CODE.test(mostly) && !/tests|documentation|settings/.test(named)
        ? `${named} (${mostly})`
        : named;
    } else if (mostly) role = `${mostly} files`;
    else role = `${top.slice(0, 2).map(([l]) => l).join(" and ")} files`;
    return { path, files: d.files, role };
  }).sort((a, b) => b.files - a.files || a.path.localeCompare(b.path));
}

/** Comments that are about the file's legal status or tooling, or label a section, not describe the file. */
const BOILERPLATE =
  /copyright|licen[cs]ed|spdx|all rights reserved|@license|@ts-|eslint|prettier|jshint|^(module (dependencies|exports)|expose\b|exports?\b|imports?\b|private\b)/i;

/**
 * One line on what a file is: its leading doc comment (code) or first heading (Markdown), else
 * what it re-exports or defines.
 */
export function describeFile(
  path: string,
  text: string,
  language: string,
): { summary: string; from: "doc" | "contents" } | undefined {
  if (language === "Markdown") {
    const heading = markdownSummary(text);
    return heading ? { summary: heading, from: "doc" } : undefined;
  }
  const lines = text.split("\n").slice(0, 200);
  let i = 0;
  let afterImports = false;
  const pragma =
    /^#!|^\s*(['"]use (strict|client|server)['"];?|# -\*-|#\s*frozen_string_literal|\/\/\s*@ts-|\/\/\s*eslint|\/\/\s*deno-)/;
  const imports =
    /^\s*(#\s*(include|define|if|ifn?def|endif|pragma|import)\b|package\s|import\s|from\s|using\s|require|use\s|extern crate)/;
  const comments: string[][] = [];
  // Leading comment blocks, in order; a licence header is skipped in favour of the one after it.
  while (i < lines.length && comments.length < 3) {
    const line = lines[i];
    if (!line.trim() || pragma.test(line) || imports.test(line)) {
      afterImports ||= imports.test(line);
      i++;
      continue;
    }
    const trimmed = line.trim();
    // Past the imports only a doc comment still speaks for the file (through its first export).
    if (afterImports && !/^(\/\*\*|\/\/[/!]|[rRuUbB]?("""|'''))/.test(trimmed)) break;
    if (trimmed.startsWith("/*")) {
      const block: string[] = [];
      for (; i < lines.length; i++) {
        block.push(lines[i]);
        if (lines[i].includes("*/")) break;
      }
      i++;
      comments.push(block);
    } else if (/^(\/\/|#(?!\[|!)|--|;;|%)/.test(trimmed)) {
      const block: string[] = [];
      for (; i < lines.length && /^\s*(\/\/|#(?!\[)|--|;;|%)/.test(lines[i]); i++) block.push(lines[i]);
      comments.push(block);
    } else if (/^[rRuUbB]?("""|''')/.test(trimmed)) {
      const quote = trimmed.match(/("""|''')/)![1];
      const block: string[] = [];
      for (; i < lines.length; i++) {
        block.push(lines[i]);
        if (block.length > 1 ? lines[i].includes(quote) : lines[i].split(quote).length > 2) break;
      }
      i++;
      comments.push(block);
    } else break;
  }
  for (const block of comments) {
    const prose = block.map((l) =>
      l.replace(/^\s*(\/\*[*!]?|\*\/|\*|\/\/[!/]?|#|--|;;|%|[rRuUbB]?"""|[rRuUbB]?''')\s?/, "").replace(
        /(\*\/|"""|''')\s*$/,
        "",
      )
    ).join(" ");
    const sentence = firstSentence(prose);
    if (sentence && !BOILERPLATE.test(sentence) && sentence.split(/\s+/).length >= 3) {
      return { summary: sentence, from: "doc" };
    }
  }
  const summary = contentSummary(text, path);
  return summary ? { summary, from: "contents" } : undefined;
}

/** For a file without a doc comment: what it re-exports, else the names it defines. */
function contentSummary(text: string, path: string): string | undefined {
  const reexports = [
    ...text.matchAll(/^export\s+(?:\*(?:\s+as\s+\w+)?|(?:type\s+)?\{[^}]*\})\s+from\s+["']([^"']+)["']/gm),
    ...text.matchAll(/^from\s+(\.[\w.]*)\s+import\b/gm),
    ...text.matchAll(/^pub\s+(?:use|mod)\s+([\w:]+)/gm),
  ].map((m) => m[1]);
  const modules = [...new Set(reexports)];
  const few = (items: string[]) => {
    const shown = items.slice(0, items.length > 4 ? 3 : 4).map((x) => `\`${x}\``);
    const rest = items.length - shown.length;
    if (rest) return `${shown.join(", ")} and ${rest} more`;
    return shown.length > 1 ? `${shown.slice(0, -1).join(", ")} and ${shown[shown.length - 1]}` : shown[0];
  };
  if (modules.length) return `Re-exports ${few(modules)}.`;
  const names = exportedSymbols(text, path);
  return names.length ? `Defines ${few(names)}.` : undefined;
}

/** The first sentence of comment prose, without JSDoc tags or Markdown links, at most ~160 characters. */
function firstSentence(prose: string): string | undefined {
  const text = prose.replace(/\{@link\s+([^}|\s]+)[^}]*\}/g, "`$1`").replace(/\[([^\]]+)\]\([^)]*\)/g, "$1")
    .replace(/\s@\w+[\s\S]*$/, "").replace(/^@\w+\s*/, "").replace(/\s+/g, " ").trim();
  if (!/[A-Za-z]{3}/.test(text)) return undefined;
  const end = text.search(/[.!?](\s|$)/);
  const sentence = end === -1 ? text : text.slice(0, end + 1);
  return sentence.length > 160 ? `${sentence.slice(0, 157).replace(/\s+\S*$/, "")}…` : sentence;
}

const SYMBOL_PATTERNS: [RegExp, RegExp[]][] = [
  [/\.[cm]?[jt]sx?$/, [
    /^export\s+(?:default\s+)?(?:declare\s+)?(?:abstract\s+)?(?:async\s+)?(?:function\*?|class|const|let|var|interface|type|enum|namespace)\s+([A-Za-z_$][\w$]*)/gm,
    /^(?:module\.)?exports\.([A-Za-z_$][\w$]*)\s*=/gm,
    /^(?:exports\s*=\s*)?module\.exports\s*=\s*([A-Za-z_$][\w$]*)\s*;?\s*$/gm,
  ]],
  [/\.pyi?$/, [/^(?:async\s+)?def\s+([A-Za-z]\w*)/gm, /^class\s+([A-Za-z]\w*)/gm]],
  [/\.rs$/, [
    /^\s*pub\s+(?:async\s+)?(?:unsafe\s+)?(?:fn|struct|enum|trait|type|mod|const|static|macro)\s+([A-Za-z_]\w*)/gm,
  ]],
  [/\.go$/, [/^func\s+(?:\([^)]*\)\s*)?([A-Z]\w*)/gm, /^type\s+([A-Z]\w*)/gm]],
  [/\.rb$/, [/^\s*(?:class|module)\s+([A-Z][\w:]*)/gm, /^\s*def\s+(?:self\.)?([a-z_]\w*[?!]?)/gm]],
  [/\.(java|kt|kts|cs|scala|swift|dart)$/, [
    /^\s*(?:public\s+|open\s+)?(?:static\s+)?(?:final\s+|abstract\s+|sealed\s+|data\s+)?(?:class|interface|enum|record|object|struct|protocol)\s+([A-Z]\w*)/gm,
  ]],
  [/\.php$/, [
    /^\s*(?:final\s+|abstract\s+)?(?:class|interface|trait|enum)\s+([A-Z]\w*)/gm,
    /^\s*(?:public\s+)?function\s+([a-zA-Z_]\w*)/gm,
  ]],
  [/\.(c|h|cc|cpp|cxx|hpp|hh|m)$/, [/^(?:[A-Za-z_][\w\s*]*?\s\**)([A-Za-z_]\w*)\s*\([^;]*$/gm]],
];

/** The names a file defines for others to use (exports, public items, top-level defs), by simple per-language patterns. */
export function exportedSymbols(text: string, path: string): string[] {
  // By extension, not language name: Linguist's names for an extension can be ambiguous.
  const patterns = SYMBOL_PATTERNS.find(([ext]) => ext.test(path))?.[1];
  if (!patterns) return [];
  const names: string[] = [];
  for (const re of patterns) {
    for (const m of text.matchAll(re)) {
      if (!names.includes(m[1]) && !/^(if|for|while|switch|return|main)$/.test(m[1])) names.push(m[1]);
    }
  }
  const exportList = /^export\s*\{([^}]*)\}/gm;
  if (/\.[cm]?[jt]sx?$/.test(path)) {
    for (const m of text.matchAll(exportList)) {
      for (const part of m[1].split(",")) {
        const name = part.trim().split(/\s+as\s+/).pop()?.trim();
        if (name && /^[A-Za-z_$][\w$]*$/.test(name) && name !== "default" && !names.includes(name)) {
          names.push(name);
        }
      }
    }
  }
  return names;
}

/**
 * Build output that repeats the source: type declarations, and compiled twins of TypeScript
 * sources (`v4/index.js` beside `src/v4/index.ts`). They add nothing to a summary.
 */
export function derivedFiles(paths: string[]): Set<string> {
  const stem = (p: string) => p.replace(/^(src|lib|source)\//, "").replace(/\.(d\.)?[cm]?[jt]sx?$/, "");
  const sources = new Set(paths.filter((p) => /\.[cm]?tsx?$/.test(p) && !DECLARATION.test(p)).map(stem));
  return new Set(
    paths.filter((p) => DECLARATION.test(p) || (/\.[cm]?jsx?$/.test(p) && sources.has(stem(p)))),
  );
}

/**
 * Retrieval hits reordered so source comes before tests (unless the query is about tests), with
 * build output left out when any source was hit, since it repeats the source; retrieval's order
 * is kept otherwise.
 */
export function rankPassages<P extends { path: string }>(passages: P[], paths: string[], query: string): P[] {
  const derived = derivedFiles([...paths, ...passages.map((p) => p.path)]);
  const source = passages.filter((p) => !derived.has(p.path));
  const kept = source.length ? source : passages;
  const aboutTests = /\b(test|spec)/i.test(query);
  const isTest = (p: P) => !aboutTests && (LOW_VALUE.test(p.path) || TEST_NAME.test(p.path));
  return [...kept.filter((p) => !isTest(p)), ...kept.filter(isTest)];
}

/** Where a declared entry point's source is: itself, or for build output (`dist/x.js`) the matching source file. */
export function resolveEntry(
  declared: string,
  has: (p: string) => boolean,
): { path: string; inTree: boolean } {
  if (has(declared)) return { path: declared, inTree: true };
  const stem = declared.replace(/\.(d\.)?[cm]?[jt]sx?$/, "");
  const rest = stem.replace(/^(dist|build|out|lib|esm|cjs)\/((esm|cjs|mjs|src)\/)?/, "");
  for (const dir of ["src/", "source/", "lib/", ""]) {
    for (const ext of [".ts", ".tsx", ".mts", ".js", ".mjs", ".jsx"]) {
      if (has(`${dir}${rest}${ext}`)) return { path: `${dir}${rest}${ext}`, inTree: true };
    }
  }
  return { path: declared, inTree: false };
}

const CONVENTIONAL_ENTRY = /^(main|index|mod|app|server|cli|lib|__main__|__init__)\.[a-z]+$/i;

const PURPOSE_ORDER: CommandPurpose[] = ["install", "build", "test", "run", "lint", "other"];

function parseManifest(path: string, text: string, has: (p: string) => boolean): Manifest | null {
  const name = baseName(path);
  if (name === "package.json") return parsePackageJson(path, text);
  if (name === "deno.json" || name === "deno.jsonc") return parseDenoJson(path, text);
  if (name === "Cargo.toml") return parseCargoToml(path, text, has);
  if (name === "pyproject.toml") return parsePyproject(path, text);
  if (name === "setup.py") return parseSetupPy(path, text);
  if (name === "requirements.txt") return parseRequirements(path, text);
  if (name === "go.mod") return parseGoMod(path, text);
  if (name === "composer.json") return parseComposerJson(path, text);
  if (name === "Gemfile") return parseGemfile(path, text, has);
  if (name.endsWith(".gemspec")) return parseGemspec(path, text);
  return parseMakefile(path, text);
}

/** Commands the ecosystem implies when the manifests do not spell them out. */
function conventionalCommands(manifests: Manifest[], paths: string[]): Command[] {
  const out: Command[] = [];
  const has = (p: string) => paths.includes(p);
  const hasTests = paths.some((p) => /^(tests?|__tests__|spec)\//.test(p) || TEST_NAME.test(p));
  const has_ = (purpose: CommandPurpose) =>
    manifests.some((m) => m.commands.some((c) => c.purpose === purpose));
  if (manifests.some((m) => m.ecosystem === "deno") && hasTests && !has_("test")) {
    out.push({ purpose: "test", command: "deno test", source: "convention" });
  }
  if (manifests.some((m) => m.ecosystem === "python") && hasTests && !has_("test")) {
    out.push({ purpose: "test", command: "pytest", source: "convention" });
  }
  if (manifests.some((m) => m.ecosystem === "go")) {
    if (has("main.go")) out.push({ purpose: "run", command: "go run .", source: "convention" });
    for (const p of paths.filter((p) => /^cmd\/[^/]+\/main\.go$/.test(p))) {
      out.push({ purpose: "run", command: `go run ./${dirName(p)}`, source: "convention" });
    }
  }
  return out;
}

/** Reads every fact the writers use from `ctx`. */
export function extractFacts(ctx: RepoContext): RepoFacts {
  const root = rootDir(ctx);
  const tree = ctx.tree.map((f) => ({ ...f, path: relative(root, f.path) }));
  const texts = new Map(ctx.files.map((f) => [relative(root, f.path), f.text]));
  const paths = tree.map((f) => f.path);
  const pathSet = new Set(paths);
  const has = (p: string) => pathSet.has(p) || texts.has(p);
  const shown = (p: string) => (root ? `${root}/${p}` : p);

  const readme = [...texts.keys()].filter((p) => /^readme(\.(md|markdown|mdx|rst|txt))?$/i.test(p))
    .sort((a, b) => Number(!/\.md$/i.test(a)) - Number(!/\.md$/i.test(b)))[0];
  const readmeText = readme ? texts.get(readme)! : "";

  const manifests: Manifest[] = [];
  for (const [path, text] of texts) {
    if (dirName(path) !== "" || !MANIFEST_FILES.test(baseName(path))) continue;
    const m = parseManifest(path, text, has);
    if (m) manifests.push(m);
  }
  const order = [
    "package.json",
    "deno.json",
    "deno.jsonc",
    "Cargo.toml",
    "pyproject.toml",
    "setup.py",
    "go.mod",
  ];
  const rank = (p: string) => (order.indexOf(p) + 1 || order.length + 1);
  manifests.sort((a, b) => rank(a.path) - rank(b.path));

  const description = manifests.map((m) => m.description).find(Boolean);
  const version = manifests.map((m) => m.version).find(Boolean);
  const license = manifests.map((m) => m.license).find(Boolean);
  const name = manifests.map((m) => m.name).find(Boolean) ?? ctx.source.name ?? (root || ctx.title);
  const words = (s: string) => new Set(s.toLowerCase().match(/[a-z0-9]+/g) ?? []);
  const repeats = (para: string) => {
    if (!description) return false;
    const a = words(para);
    const b = words(description);
    const shared = [...a].filter((w) => b.has(w)).length;
    return shared / Math.max(1, a.size, b.size) >= 0.6;
  };
  // A paragraph that opens by restating the description keeps only what it adds.
  const purpose = readmeIntro(readmeText, 3, repeats).map((p) => {
    const first = p.match(/^.+?[.!?](?=\s|$)/)?.[0];
    const rest = first ? p.slice(first.length).trim() : "";
    return first && repeats(first) && rest.length > 30 ? rest : p;
  });

  const entryPoints: ResolvedEntryPoint[] = [];
  for (const m of manifests) {
    for (const e of m.entryPoints) {
      const python = m.ecosystem === "python" && /:/.test(e.path);
      const resolved = python
        ? { path: pythonModuleFiles(e.path).find(has) ?? e.path, inTree: pythonModuleFiles(e.path).some(has) }
        : resolveEntry(join(dirName(m.path), e.path), has);
      if (entryPoints.some((x) => x.path === resolved.path)) continue;
      const declared = python || resolved.path !== join("", e.path) ? e.path : undefined;
      entryPoints.push({ label: e.label, ...resolved, ...(declared ? { declared } : {}) });
    }
  }
  if (!entryPoints.length) {
    const conventional = tree.filter((f) =>
      CONVENTIONAL_ENTRY.test(baseName(f.path)) && f.path.split("/").length <= 3 && !LOW_VALUE.test(f.path) &&
      !TEST_NAME.test(f.path) && !DECLARATION.test(f.path) && !NOT_CODE.test(f.language)
    ).sort((a, b) => a.path.split("/").length - b.path.split("/").length || b.priority - a.priority);
    for (const f of conventional.slice(0, 4)) {
      entryPoints.push({ label: "conventional entry file", path: f.path, inTree: true });
    }
  }

  const commands: Command[] = [];
  for (const c of [...manifests.flatMap((m) => m.commands), ...conventionalCommands(manifests, paths)]) {
    if (!commands.some((x) => x.command === c.command)) commands.push(c);
  }
  // Within a purpose the plain command (`npm test`) reads better first than its variants (`test:watch`).
  const CANONICAL: Record<CommandPurpose, RegExp> = {
    install: /install$/,
    build: /build( --release)?$/,
    test: /[\s.]test( \.\/\.\.\.)?$/,
    run: /\s(start|dev|run|\.)$/,
    lint: /\slint$/,
    other: /$^/,
  };
  const plain = (c: Command) => (CANONICAL[c.purpose].test(c.command) ? 0 : 1);
  commands.sort((a, b) =>
    PURPOSE_ORDER.indexOf(a.purpose) - PURPOSE_ORDER.indexOf(b.purpose) || plain(a) - plain(b)
  );

  const dependencies: Dependency[] = [];
  for (const d of manifests.flatMap((m) => m.dependencies)) {
    if (!dependencies.some((x) => x.name === d.name)) dependencies.push(d);
  }

  const derived = derivedFiles(paths);
  const note = (f: TreeFile): FileNote => {
    const text = texts.get(f.path);
    const about = text === undefined ? undefined : describeFile(f.path, text, f.language);
    return {
      path: shown(f.path),
      language: f.language,
      tokens: f.tokens,
      ...(about ? { summary: about.summary, summaryFrom: about.from } : {}),
    };
  };
  const readable = tree.filter((f) =>
    !derived.has(f.path) && !MANIFEST_FILES.test(baseName(f.path)) && f.path !== readme &&
    !DATA.test(f.language) &&
    !/^(license|licence|copying|notice|changelog|history|code_of_conduct|contributing|security|authors)(\.|$)/i
      .test(baseName(f.path)) &&
    !/^\./.test(baseName(f.path))
  );
  // Among equally placed files the bigger one usually carries more of the design.
  const byPriority = [...readable].sort((a, b) => b.priority - a.priority || b.tokens - a.tokens);
  const entryPaths = new Set(entryPoints.map((e) => e.path));
  // Entry points have their own section, barrel files only re-export and a file without text in
  // the context cannot be described, so among the main files the others come first; tests, docs
  // and examples (priority under 30) always come last.
  const notes = byPriority.slice(0, 60).map((f, i) => ({ f, i, note: note(f) }));
  const keyRank = (n: (typeof notes)[number]) =>
    (n.f.priority < 30 ? 10 : 0) + Number(entryPaths.has(n.f.path)) +
    (!n.note.summary ? 2 : n.note.summary.startsWith("Re-exports") ? 1 : 0);
  const keyFiles = notes.sort((a, b) => keyRank(a) - keyRank(b) || a.i - b.i).slice(0, 12).map((n) => n.note);
  const code = readable.filter((f) => !NOT_CODE.test(f.language) && f.priority >= 30);
  const largest = [...code].sort((a, b) => b.tokens - a.tokens).slice(0, 6).map(note);
  const symbols = byPriority.filter((f) => texts.has(f.path) && !NOT_CODE.test(f.language))
    .map((f) => ({ path: shown(f.path), names: exportedSymbols(texts.get(f.path)!, f.path) }))
    .filter((s) => s.names.length);

  return {
    name,
    ...(description ? { description } : {}),
    ...(version ? { version } : {}),
    ...(license ? { license } : {}),
    purpose,
    ...(readme ? { readmePath: shown(readme) } : {}),
    howTo: readmeText ? readmeSections(readmeText) : [],
    manifests: manifests.map((m) => ({ ...m, path: shown(m.path) })),
    languages: languageShares(ctx.stats.languages, ctx.tree),
    folders: folderLayout(tree, derived),
    rootFiles: paths.filter((p) => !p.includes("/")).sort(),
    entryPoints: entryPoints.map((e) => ({ ...e, path: e.inTree ? shown(e.path) : e.path })),
    commands: commands.map((c) => ({ ...c, source: c.source === "convention" ? c.source : shown(c.source) })),
    dependencies,
    keyFiles,
    largest,
    symbols,
    totals: {
      files: ctx.stats.files || tree.length,
      tokens: ctx.stats.tokens || tree.reduce((n, f) => n + f.tokens, 0),
    },
  };
}
