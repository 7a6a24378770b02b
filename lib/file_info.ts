/** Facts about one stored file: its language and how early it matters (its token count: lib/tokens.ts). */
import * as languages from "linguist-languages";

type LanguageData = { name: string; type: string; extensions?: string[]; filenames?: string[] };

const COMMON_READING: Record<string, string> = {
  ".rs": "Rust",
  ".m": "Objective-C",
  ".sql": "SQL",
  ".html": "HTML",
  ".htm": "HTML",
  ".md": "Markdown",
  ".v": "Verilog",
  ".pl": "Perl",
  ".h": "C",
};

let byExtension: Map<string, string> | null = null;
let byFilename: Map<string, string> | null = null;

/** Builds the lookup tables once; programming and markup languages win over data and prose. */
function tables(): [Map<string, string>, Map<string, string>] {
  if (byExtension && byFilename) return [byExtension, byFilename];
  byExtension = new Map();
  byFilename = new Map();
  const rank = (t: string) => (t === "programming" ? 0 : t === "markup" ? 1 : t === "prose" ? 2 : 3);
  const all = (Object.values(languages) as LanguageData[]).filter((l) => l && typeof l.name === "string")
    .sort((a, b) => rank(a.type) - rank(b.type));
  // A language's first extension is its primary one: `.rs` is Rust's, not RenderScript's.
  for (const lang of all) {
    const primary = lang.extensions?.[0]?.toLowerCase();
    if (primary && !byExtension.has(primary)) byExtension.set(primary, lang.name);
  }
  for (const lang of all) {
    for (const ext of lang.extensions ?? []) {
      if (!byExtension.has(ext.toLowerCase())) byExtension.set(ext.toLowerCase(), lang.name);
    }
    for (const name of lang.filenames ?? []) if (!byFilename.has(name)) byFilename.set(name, lang.name);
  }
  // Several languages claim these as primary; Linguist picks by heuristics, we by how common.
  for (const [ext, name] of Object.entries(COMMON_READING)) byExtension.set(ext, name);
  return [byExtension, byFilename];
}

/** The file's language by name and extension (Linguist's data), or "Text". */
export function detectLanguage(path: string): string {
  const [ext, names] = tables();
  const name = path.slice(path.lastIndexOf("/") + 1);
  const direct = names.get(name);
  if (direct) return direct;
  const lower = name.toLowerCase();
  for (let i = lower.indexOf("."); i !== -1; i = lower.indexOf(".", i + 1)) {
    const found = ext.get(lower.slice(i));
    if (found) return found;
  }
  return "Text";
}

const MANIFESTS = new Set([
  "package.json",
  "deno.json",
  "deno.jsonc",
  "Cargo.toml",
  "go.mod",
  "pyproject.toml",
  "setup.py",
  "setup.cfg",
  "requirements.txt",
  "Gemfile",
  "pom.xml",
  "build.gradle",
  "build.gradle.kts",
  "composer.json",
  "mix.exs",
  "Makefile",
  "CMakeLists.txt",
  "Dockerfile",
  "docker-compose.yml",
  "tsconfig.json",
  "pubspec.yaml",
]);
const ENTRY_POINTS = /^(main|index|app|server|cli|mod|lib|__init__|__main__)\.[a-z]+$/i;
const LOW_VALUE_DIRS =
  /(^|\/)(tests?|__tests__|spec|specs|fixtures?|testdata|examples?|samples?|docs?|benchmarks?|bench|scripts)\//i;
const TEST_FILE = /(\.|_)(test|spec)\.[a-z]+$|^test_.*\.py$/i;

/**
 * Priority 0–100, higher first: README and manifests, then entry points and top-level source,
 * then the rest by depth; tests, fixtures, examples and docs come last.
 */
export function filePriority(path: string): number {
  const segments = path.split("/");
  const name = segments[segments.length - 1];
  const depth = segments.length - 1;
  if (/^readme(\.|$)/i.test(name)) return depth === 0 ? 100 : 60;
  if (MANIFESTS.has(name)) return depth === 0 ? 95 : 55;
  if (LOW_VALUE_DIRS.test(path) || TEST_FILE.test(name)) return Math.max(5, 25 - depth * 2);
  if (/^(contributing|changelog|license|code_of_conduct|security)(\.|$)/i.test(name)) return 20;
  if (ENTRY_POINTS.test(name)) return Math.max(50, 90 - depth * 5);
  return Math.max(30, 70 - depth * 5);
}
