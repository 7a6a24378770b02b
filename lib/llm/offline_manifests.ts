/**
 * Reading build manifests without a model: package.json, deno.json(c), Cargo.toml, pyproject.toml,
 * setup.py, requirements.txt, go.mod, composer.json, Gemfile, *.gemspec and Makefile each become
 * the same shape — name, description, entry points, commands and dependencies.
 */
import { parse as parseToml } from "smol-toml";

/** What a command is for, which decides where a writer lists it. */
export type CommandPurpose = "install" | "build" | "test" | "run" | "lint" | "other";

/** A command a person can type, what it is for, and where it was found. */
export interface Command {
  purpose: CommandPurpose;
  command: string;
  source: string;
  /** What the command runs, when the manifest says (a script's body, a script's target). */
  runs?: string;
  /** What the command is for, in the manifest's words (a task's or a target's description). */
  about?: string;
}

/** A file a program or library starts from. */
export interface EntryPoint {
  /** What it is, for a person: "main module", "command `zod`", "export `./mini`". */
  label: string;
  /** The path as the manifest states it, relative to the manifest's folder. */
  path: string;
}

/** A package the project depends on; `dev` when only for development or tests. */
export interface Dependency {
  name: string;
  version?: string;
  dev: boolean;
}

/** The toolchain a manifest belongs to. */
export type Ecosystem = "node" | "deno" | "rust" | "python" | "go" | "php" | "ruby" | "make";

/** What one manifest says. Paths in `entryPoints` are as declared; the caller resolves them. */
export interface Manifest {
  path: string;
  ecosystem: Ecosystem;
  name?: string;
  version?: string;
  description?: string;
  license?: string;
  entryPoints: EntryPoint[];
  commands: Command[];
  dependencies: Dependency[];
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A JSON manifest's top-level object, or null when the text is not JSON or not an object. */
function jsonObject(text: string): Json | null {
  try {
    const value: unknown = JSON.parse(text);
    return isObject(value) ? value : null;
  } catch {
    return null;
  }
}

function str(v: unknown): string | undefined {
  return typeof v === "string" && v.trim() ? v.trim() : undefined;
}

function empty(path: string, ecosystem: Ecosystem): Manifest {
  return { path, ecosystem, entryPoints: [], commands: [], dependencies: [] };
}

/** Guesses what a script or target is for from its name (`test:unit` → test, `serve` → run). */
export function purposeOf(name: string): CommandPurpose {
  const n = name.toLowerCase();
  if (/^(install|setup|bootstrap|deps)\b/.test(n)) return "install";
  if (/^(test|tests|spec|check|coverage|cov|e2e|ci)\b/.test(n) || /(^|[:_-])test/.test(n)) return "test";
  if (/^(build|compile|bundle|dist|package|release)\b/.test(n)) return "build";
  if (/^(start|serve|server|dev|develop|watch|run|preview|demo)\b/.test(n)) return "run";
  if (/^(lint|fmt|format|prettier|eslint|style|typecheck|tsc)\b/.test(n)) return "lint";
  return "other";
}

function depsFrom(table: unknown, dev: boolean, skip: (name: string) => boolean = () => false): Dependency[] {
  if (!isObject(table)) return [];
  return Object.entries(table).filter(([name]) => !skip(name)).map(([name, spec]) => ({
    name,
    version: typeof spec === "string" ? spec : isObject(spec) ? str(spec.version) : undefined,
    dev,
  }));
}

/** A JSON file that may hold comments and trailing commas (deno.jsonc, tsconfig-style files). */
function parseJsonc(text: string): unknown {
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      const start = i;
      for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === "\\") i++;
      out += text.slice(start, i + 1);
    } else if (c === "/" && text[i + 1] === "/") {
      while (i < text.length && text[i] !== "\n") i++;
      out += "\n";
    } else if (c === "/" && text[i + 1] === "*") {
      i = text.indexOf("*/", i + 2);
      if (i === -1) break;
      i++;
    } else out += c;
  }
  return JSON.parse(out.replace(/,(\s*[}\]])/g, "$1"));
}

/** Lifecycle hooks npm runs by itself; listing them as commands would only confuse. */
const NPM_HOOKS = /^(pre|post)|^(prepare|prepublishOnly|prepack|postpack|version|install|uninstall)$/;

function npmRun(manager: string, script: string): string {
  if (manager === "npm") {
    return script === "test" || script === "start" ? `npm ${script}` : `npm run ${script}`;
  }
  if (manager === "yarn") return `yarn ${script}`;
  return `${manager} run ${script}`;
}

/** The file an `exports` condition tree points at, preferring source over types and builds. */
function exportTarget(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (Array.isArray(value)) return value.map(exportTarget).find(Boolean);
  if (!isObject(value)) return undefined;
  const entries = Object.entries(value);
  const order = (key: string) =>
    /source|development/.test(key)
      ? 0
      : key === "import"
      ? 1
      : key === "default"
      ? 2
      : key === "types"
      ? 4
      : 3;
  entries.sort((a, b) => order(a[0]) - order(b[0]));
  for (const [, v] of entries) {
    const target = exportTarget(v);
    if (target && !/\.d\.[cm]?ts$/.test(target)) return target;
  }
  return undefined;
}

/** package.json: scripts run through the declared package manager; bin, main and exports as entry points. */
export function parsePackageJson(path: string, text: string): Manifest | null {
  const pkg = jsonObject(text);
  if (!pkg) return null;
  const m = empty(path, "node");
  m.name = str(pkg.name);
  m.version = str(pkg.version);
  m.description = str(pkg.description);
  m.license = str(pkg.license);
  const manager = str(pkg.packageManager)?.match(/^(npm|pnpm|yarn|bun)@/)?.[1] ?? "npm";
  const scripts = isObject(pkg.scripts) ? pkg.scripts : {};
  m.commands.push({ purpose: "install", command: `${manager} install`, source: path });
  for (const [name, body] of Object.entries(scripts)) {
    if (typeof body !== "string" || NPM_HOOKS.test(name)) continue;
    m.commands.push({ purpose: purposeOf(name), command: npmRun(manager, name), source: path, runs: body });
  }
  if (typeof pkg.bin === "string") {
    m.entryPoints.push({ label: `command \`${m.name ?? "bin"}\``, path: pkg.bin });
  } else if (isObject(pkg.bin)) {
    for (const [name, file] of Object.entries(pkg.bin)) {
      if (typeof file === "string") m.entryPoints.push({ label: `command \`${name}\``, path: file });
    }
  }
  const exports = pkg.exports;
  const subpaths = isObject(exports) && Object.keys(exports).some((k) => k.startsWith("."))
    ? Object.entries(exports)
    : exports !== undefined
    ? [[".", exports] as [string, unknown]]
    : [];
  for (const [sub, value] of subpaths) {
    if (sub.includes("*") || sub.endsWith("package.json")) continue;
    const target = exportTarget(value);
    if (target) {
      m.entryPoints.push({ label: sub === "." ? "main export" : `export \`${sub}\``, path: target });
    }
  }
  const main = str(pkg.main) ?? str(pkg.module);
  const norm = (p: string) => p.replace(/^\.\//, "");
  if (main && !m.entryPoints.some((e) => norm(e.path) === norm(main))) {
    m.entryPoints.push({ label: "main module", path: main });
  }
  m.dependencies = [
    ...depsFrom(pkg.dependencies, false),
    ...depsFrom(pkg.peerDependencies, false),
    ...depsFrom(pkg.devDependencies, true),
  ];
  return m;
}

/** deno.json(c): tasks, exports and the import map. */
export function parseDenoJson(path: string, text: string): Manifest | null {
  let cfg: unknown;
  try {
    cfg = parseJsonc(text);
  } catch {
    return null;
  }
  if (!isObject(cfg)) return null;
  const m = empty(path, "deno");
  m.name = str(cfg.name);
  m.version = str(cfg.version);
  m.license = str(cfg.license);
  if (isObject(cfg.tasks)) {
    for (const [name, task] of Object.entries(cfg.tasks)) {
      const body = typeof task === "string" ? task : isObject(task) ? str(task.command) : undefined;
      const description = isObject(task) ? str(task.description) : undefined;
      m.commands.push({
        purpose: purposeOf(name),
        command: `deno task ${name}`,
        source: path,
        ...(body ? { runs: body } : {}),
        ...(description ? { about: description } : {}),
      });
    }
  }
  if (typeof cfg.exports === "string") m.entryPoints.push({ label: "main export", path: cfg.exports });
  else if (isObject(cfg.exports)) {
    for (const [sub, target] of Object.entries(cfg.exports)) {
      if (typeof target === "string") {
        m.entryPoints.push({ label: sub === "." ? "main export" : `export \`${sub}\``, path: target });
      }
    }
  }
  m.dependencies = depsFrom(cfg.imports, false, (name) => name.endsWith("/"));
  return m;
}

function toml(text: string): Json | null {
  try {
    return parseToml(text) as Json;
  } catch {
    return null;
  }
}

/** Cargo.toml: the crate, its binaries and library, and cargo's standard commands. */
export function parseCargoToml(path: string, text: string, hasFile: (p: string) => boolean): Manifest | null {
  const doc = toml(text);
  if (!doc) return null;
  const m = empty(path, "rust");
  const pkg = isObject(doc.package) ? doc.package : {};
  m.name = str(pkg.name);
  m.version = str(pkg.version);
  m.description = str(pkg.description);
  m.license = str(pkg.license);
  const lib = isObject(doc.lib) ? doc.lib : null;
  const libPath = str(lib?.path) ?? (hasFile("src/lib.rs") ? "src/lib.rs" : undefined);
  if (libPath) m.entryPoints.push({ label: "library crate root", path: libPath });
  const bins = Array.isArray(doc.bin) ? doc.bin.filter(isObject) : [];
  for (const bin of bins) {
    const name = str(bin.name) ?? m.name ?? "bin";
    const file = str(bin.path) ?? (hasFile(`src/bin/${name}.rs`) ? `src/bin/${name}.rs` : "src/main.rs");
    m.entryPoints.push({ label: `binary \`${name}\``, path: file });
  }
  if (!bins.length && hasFile("src/main.rs")) {
    m.entryPoints.push({ label: `binary \`${m.name ?? "main"}\``, path: "src/main.rs" });
  }
  if (doc.package || doc.workspace) {
    m.commands.push({ purpose: "build", command: "cargo build --release", source: path });
    m.commands.push({ purpose: "test", command: "cargo test", source: path });
  }
  const binCount = m.entryPoints.filter((e) => e.label.startsWith("binary")).length;
  if (binCount === 1) m.commands.push({ purpose: "run", command: "cargo run", source: path });
  else if (binCount > 1) {
    for (const e of m.entryPoints.filter((e) => e.label.startsWith("binary"))) {
      const name = e.label.match(/`(.+)`/)?.[1];
      m.commands.push({ purpose: "run", command: `cargo run --bin ${name}`, source: path });
    }
  }
  const workspace = isObject(doc.workspace) ? doc.workspace : {};
  m.dependencies = [
    ...depsFrom(doc.dependencies, false),
    ...depsFrom(workspace.dependencies, false),
    ...depsFrom(doc["dev-dependencies"], true),
  ];
  return m;
}

/** The distribution name of a PEP 508 requirement (`requests[socks]>=2; python_version<"4"` → requests). */
function requirementName(spec: string): string | undefined {
  return spec.trim().match(/^[A-Za-z0-9][A-Za-z0-9._-]*/)?.[0];
}

function requirementDeps(list: unknown, dev: boolean): Dependency[] {
  if (!Array.isArray(list)) return [];
  return list.flatMap((spec) => {
    const name = typeof spec === "string" ? requirementName(spec) : undefined;
    return name ? [{ name, version: String(spec).slice(name.length).trim() || undefined, dev }] : [];
  });
}

/** `package.module:function` → the module's likely files, for entry points declared as Python scripts. */
export function pythonModuleFiles(target: string): string[] {
  const module = target.split(":")[0].trim().replace(/\./g, "/");
  return [
    `${module}.py`,
    `${module}/__init__.py`,
    `${module}/__main__.py`,
    `src/${module}.py`,
    `src/${module}/__init__.py`,
  ];
}

/** pyproject.toml: PEP 621 `[project]` or Poetry's `[tool.poetry]`, scripts as commands. */
export function parsePyproject(path: string, text: string): Manifest | null {
  const doc = toml(text);
  if (!doc) return null;
  const m = empty(path, "python");
  const project = isObject(doc.project) ? doc.project : {};
  const tool = isObject(doc.tool) ? doc.tool : {};
  const poetry = isObject(tool.poetry) ? tool.poetry : {};
  m.name = str(project.name) ?? str(poetry.name);
  m.version = str(project.version) ?? str(poetry.version);
  m.description = str(project.description) ?? str(poetry.description);
  const license = project.license ?? poetry.license;
  m.license = str(license) ?? (isObject(license) ? str(license.text) : undefined);
  const scripts = {
    ...(isObject(poetry.scripts) ? poetry.scripts : {}),
    ...(isObject(project.scripts) ? project.scripts : {}),
  };
  const usesPoetry = Object.keys(poetry).length > 0;
  m.commands.push({
    purpose: "install",
    command: usesPoetry ? "poetry install" : "pip install -e .",
    source: path,
  });
  for (const [name, target] of Object.entries(scripts)) {
    if (typeof target !== "string") continue;
    m.entryPoints.push({ label: `command \`${name}\``, path: target });
    m.commands.push({ purpose: "run", command: name, source: path, runs: target });
  }
  const optional = isObject(project["optional-dependencies"]) ? project["optional-dependencies"] : {};
  const groups = isObject(doc["dependency-groups"]) ? doc["dependency-groups"] : {};
  const poetryGroups = isObject(poetry.group) ? poetry.group : {};
  m.dependencies = [
    ...requirementDeps(project.dependencies, false),
    ...depsFrom(poetry.dependencies, false, (n) => n === "python"),
    ...Object.values(optional).flatMap((list) => requirementDeps(list, true)),
    ...Object.values(groups).flatMap((list) => requirementDeps(list, true)),
    ...Object.values(poetryGroups).flatMap((g) => depsFrom(isObject(g) ? g.dependencies : null, true)),
    ...depsFrom(poetry["dev-dependencies"], true),
  ];
  if (isObject(tool.pytest) || m.dependencies.some((d) => d.name === "pytest")) {
    m.commands.push({ purpose: "test", command: usesPoetry ? "poetry run pytest" : "pytest", source: path });
  }
  return m;
}

/** setup.py: the literal keyword arguments most projects pass to `setup()`. */
export function parseSetupPy(path: string, text: string): Manifest {
  const m = empty(path, "python");
  const kwarg = (key: string) => text.match(new RegExp(`\\b${key}\\s*=\\s*(['"])(.*?)\\1`))?.[2];
  m.name = kwarg("name");
  m.version = kwarg("version");
  m.description = kwarg("description");
  m.commands.push({ purpose: "install", command: "pip install -e .", source: path });
  const scripts = text.match(/console_scripts['"]?\s*[:=]\s*\[([\s\S]*?)\]/)?.[1] ?? "";
  for (const [, name, target] of scripts.matchAll(/['"]\s*([\w.-]+)\s*=\s*([\w.:]+)\s*['"]/g)) {
    m.entryPoints.push({ label: `command \`${name}\``, path: target });
    m.commands.push({ purpose: "run", command: name, source: path, runs: target });
  }
  const requires = text.match(/install_requires\s*=\s*\[([\s\S]*?)\]/)?.[1] ?? "";
  m.dependencies = requirementDeps([...requires.matchAll(/['"]([^'"]+)['"]/g)].map((x) => x[1]), false);
  return m;
}

/** requirements.txt: one requirement a line; options and includes are skipped. */
export function parseRequirements(path: string, text: string): Manifest {
  const m = empty(path, "python");
  m.commands.push({ purpose: "install", command: `pip install -r ${path}`, source: path });
  const lines = text.split("\n").map((l) => l.replace(/#.*/, "").trim()).filter((l) =>
    l && !l.startsWith("-")
  );
  m.dependencies = requirementDeps(lines, /dev|test/i.test(path));
  return m;
}

/** go.mod: the module path and its direct requirements. */
export function parseGoMod(path: string, text: string): Manifest {
  const m = empty(path, "go");
  m.name = text.match(/^module\s+(\S+)/m)?.[1];
  const block = text.match(/^require\s*\(([\s\S]*?)^\)/m)?.[1] ?? "";
  const single = [...text.matchAll(/^require\s+([^\s(]+)\s+(\S+)(.*)$/gm)].map((x) =>
    `${x[1]} ${x[2]}${x[3]}`
  );
  for (const line of [...block.split("\n"), ...single]) {
    const [name, version] = line.trim().split(/\s+/);
    if (!name || name.startsWith("//")) continue;
    // Indirect requirements are the dependencies' own, not choices this project made.
    if (!line.includes("// indirect")) m.dependencies.push({ name, version, dev: false });
  }
  m.commands.push({ purpose: "build", command: "go build ./...", source: path });
  m.commands.push({ purpose: "test", command: "go test ./...", source: path });
  return m;
}

/** composer.json: PHP's package manifest. */
export function parseComposerJson(path: string, text: string): Manifest | null {
  const pkg = jsonObject(text);
  if (!pkg) return null;
  const m = empty(path, "php");
  m.name = str(pkg.name);
  m.description = str(pkg.description);
  m.license = str(pkg.license);
  m.commands.push({ purpose: "install", command: "composer install", source: path });
  if (isObject(pkg.scripts)) {
    for (const [name, body] of Object.entries(pkg.scripts)) {
      if (/^(pre|post)-/.test(name)) continue;
      const runs = Array.isArray(body) ? body.join(" && ") : typeof body === "string" ? body : undefined;
      m.commands.push({ purpose: purposeOf(name), command: `composer ${name}`, source: path, runs });
    }
  }
  if (Array.isArray(pkg.bin)) {
    for (const file of pkg.bin) {
      if (typeof file === "string") m.entryPoints.push({ label: "command", path: file });
    }
  }
  const platform = (name: string) => name === "php" || name.startsWith("ext-");
  m.dependencies = [
    ...depsFrom(pkg.require, false, platform),
    ...depsFrom(pkg["require-dev"], true, platform),
  ];
  return m;
}

/** Gemfile: `gem` lines, grouped ones inside `group :development, :test` counted as dev. */
export function parseGemfile(path: string, text: string, hasFile: (p: string) => boolean): Manifest {
  const m = empty(path, "ruby");
  m.commands.push({ purpose: "install", command: "bundle install", source: path });
  if (hasFile("Rakefile")) m.commands.push({ purpose: "test", command: "bundle exec rake", source: path });
  let dev = false;
  for (const line of text.split("\n")) {
    if (/^\s*group\b.*:(development|test)/.test(line)) dev = true;
    else if (/^\s*end\b/.test(line)) dev = false;
    const gem = line.match(/^\s*gem\s+['"]([^'"]+)['"](?:\s*,\s*['"]([^'"]+)['"])?/);
    if (gem) m.dependencies.push({ name: gem[1], version: gem[2], dev });
  }
  return m;
}

/** *.gemspec: the gem's name and summary, which Gemfiles lack. */
export function parseGemspec(path: string, text: string): Manifest {
  const m = empty(path, "ruby");
  const field = (key: string) => text.match(new RegExp(`\\.${key}\\s*=\\s*(['"])(.*?)\\1`))?.[2];
  m.name = field("name");
  m.description = field("summary") ?? field("description");
  m.license = field("license");
  return m;
}

/**
 * Makefile: its targets as `make` commands. A `## text` comment on the target line (the
 * self-documenting Makefile convention) says what the target is for.
 */
export function parseMakefile(path: string, text: string): Manifest {
  const m = empty(path, "make");
  const seen = new Set<string>();
  for (
    const [, names, doc] of text.matchAll(/^([A-Za-z0-9][\w./ -]*?)\s*:(?![=:])[^\n#]*(?:##\s*(.*))?$/gm)
  ) {
    for (const name of names.trim().split(/\s+/)) {
      if (seen.has(name) || name.includes("%") || name.includes("/") || name.includes(".")) continue;
      seen.add(name);
      m.commands.push({
        purpose: purposeOf(name),
        command: `make ${name}`,
        source: path,
        ...(doc?.trim() ? { about: doc.trim() } : {}),
      });
    }
  }
  return m;
}
