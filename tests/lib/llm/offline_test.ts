import assert from "node:assert/strict";
import { detectLanguage, filePriority } from "../../../lib/file_info.ts";
import { countTokens } from "../../../lib/tokens.ts";
import type { TreeFile } from "../../../lib/ingest.ts";
import { OfflineProvider } from "../../../lib/llm/offline.ts";
import { extractFacts, rankPassages } from "../../../lib/llm/offline_facts.ts";
import {
  parseDenoJson,
  parseGoMod,
  parseMakefile,
  parseSetupPy,
} from "../../../lib/llm/offline_manifests.ts";
import { readmeIntro, readmeSections } from "../../../lib/llm/offline_markdown.ts";
import {
  type ChatTask,
  type Delta,
  type Expertise,
  type GenerationTask,
  type Passage,
  PODCAST_HOSTS,
  type RepoContext,
  SLIDE_SEPARATOR,
} from "../../../lib/llm/types.ts";

/** A RepoContext as the real pipeline builds it: tree facts from file_info, every file's text in budget. */
function repoContext(files: Record<string, string>, passages: Passage[] = []): RepoContext {
  const tree: TreeFile[] = Object.entries(files).map(([path, text]) => ({
    path,
    bytes: new TextEncoder().encode(text).byteLength,
    tokens: countTokens(text),
    language: detectLanguage(path),
    priority: filePriority(path),
  })).sort((a, b) => b.priority - a.priority || a.path.localeCompare(b.path));
  const languages: Record<string, number> = {};
  for (const f of tree) languages[f.language] = (languages[f.language] ?? 0) + f.bytes;
  return {
    title: "fixture",
    source: { type: "upload", filename: "fixture.tar.gz" },
    stats: {
      files: tree.length,
      skipped: 0,
      bytes: tree.reduce((n, f) => n + f.bytes, 0),
      tokens: tree.reduce((n, f) => n + f.tokens, 0),
      languages,
    },
    tree,
    files: tree.map((f) => ({ path: f.path, text: files[f.path], tokens: f.tokens })),
    passages,
  };
}

const NODE_PACKAGE = {
  "README.md": `# csvreport

[![CI](https://github.com/acme/csvreport/actions/workflows/ci.yml/badge.svg)](https://github.com/acme/csvreport/actions)
[![npm](https://img.shields.io/npm/v/csvreport)](https://www.npmjs.com/package/csvreport)

<p align="center"><img src="logo.png" width="120"></p>

csvreport turns CSV exports into JSON reports for data teams. It streams rows, so files of any size stay cheap to convert.

## Table of contents

- [Installation](#installation)
- [Usage](#usage)

## Installation

\`\`\`sh
npm install -g csvreport
\`\`\`

## Usage

Point it at a file and it prints the report to standard output, one JSON object per line.

\`\`\`sh
csvreport sales.csv > report.jsonl
\`\`\`

## License

MIT
`,
  "package.json": JSON.stringify(
    {
      name: "csvreport",
      version: "1.2.0",
      description: "Convert CSV exports into JSON reports",
      main: "dist/index.js",
      bin: { csvreport: "./bin/cli.js" },
      scripts: {
        build: "tsc -p .",
        test: "node --test",
        start: "node bin/cli.js",
        lint: "eslint .",
        prepublishOnly: "npm run build",
      },
      dependencies: { "csv-parse": "^5.5.0", "commander": "^12.0.0" },
      devDependencies: { typescript: "^5.4.0", eslint: "^9.0.0" },
    },
    null,
    2,
  ),
  "src/index.ts": `/**
 * Converts parsed CSV rows into report objects, one per row.
 */
import { parse } from "csv-parse";

export interface Report {
  rows: number;
}

export function convert(text: string): Report {
  return { rows: parse(text).length };
}

export class ReportWriter {}
`,
  "src/format.ts": `// Formats numbers and dates the way finance teams expect.
export const formatAmount = (n: number) => n.toFixed(2);
`,
  "bin/cli.js": `#!/usr/bin/env node
// Command-line entry: reads a CSV path and prints the report.
import { convert } from "../dist/index.js";
console.log(convert(process.argv[2]));
`,
  "test/index.test.ts":
    `import { convert } from "../src/index.ts";\nDeno.test("convert", () => convert("a,b"));\n`,
};

const RUST_CRATE = {
  "README.md":
    "# ripfast\n\nripfast searches directories for a regex pattern, respecting gitignore rules by default.\n",
  "Cargo.toml": `[package]
name = "ripfast"
version = "0.3.1"
description = "Fast recursive search"
edition = "2021"

[[bin]]
name = "rf"
path = "src/main.rs"

[dependencies]
regex = "1.10"
clap = { version = "4.5", features = ["derive"] }

[dev-dependencies]
tempfile = "3"
`,
  "src/main.rs":
    "//! Command-line front end: parses flags and prints matches.\nfn main() {\n    ripfast::search();\n}\n",
  "src/lib.rs": "//! The search engine behind the rf command.\npub fn search() {}\n\npub struct Matcher;\n",
  "tests/cli.rs": "#[test]\nfn runs() {}\n",
};

const PYTHON_PROJECT = {
  "README.md":
    "# weatherly\n\nweatherly shows the forecast for your city in the terminal, with colours and a seven-day table.\n",
  "pyproject.toml": `[project]
name = "weatherly"
version = "2.0.0"
description = "Weather forecasts in your terminal"
dependencies = ["requests>=2.31", "rich"]

[project.optional-dependencies]
dev = ["pytest>=8"]

[project.scripts]
weatherly = "weatherly.cli:main"

[tool.pytest.ini_options]
testpaths = ["tests"]
`,
  "weatherly/__init__.py": '"""Weather forecasts in your terminal."""\n',
  "weatherly/cli.py":
    '"""Command-line interface: parses the city and prints the forecast."""\n\ndef main():\n    pass\n',
  "tests/test_cli.py": "def test_main():\n    pass\n",
  "Makefile": ".PHONY: test lint\ntest: ## Run the test suite\n\tpytest\n\nlint:\n\truff check .\n",
};

async function collect(stream: AsyncIterable<Delta>): Promise<{ text: string; deltas: Delta[] }> {
  const deltas: Delta[] = [];
  for await (const d of stream) deltas.push(d);
  return { text: deltas.map((d) => d.text ?? "").join(""), deltas };
}

const never = new AbortController().signal;
const provider = new OfflineProvider();

function generate(
  ctx: RepoContext,
  kind: GenerationTask["kind"],
  expertise: Expertise = "intermediate",
  concept?: string,
) {
  return collect(provider.generate({ kind, expertise, concept, context: ctx }, never));
}

/** Every `[path:start-end]` citation in `text`. */
function citations(text: string): { path: string; start: number; end: number }[] {
  return [...text.matchAll(/\[([^\]\s:]+):(\d+)-(\d+)\]/g)].map((m) => ({
    path: m[1],
    start: +m[2],
    end: +m[3],
  }));
}

function within(c: { path: string; start: number; end: number }, spans: Passage[]): boolean {
  return spans.some((p) =>
    p.path === c.path && p.startLine <= c.start && c.end <= p.endLine && c.start <= c.end
  );
}

Deno.test("extractFacts reads a Node package: purpose, commands, entry points, key files", () => {
  const f = extractFacts(repoContext(NODE_PACKAGE));
  assert.equal(f.name, "csvreport");
  assert.equal(f.description, "Convert CSV exports into JSON reports");
  assert.equal(f.purpose.length, 1);
  assert.match(f.purpose[0], /^csvreport turns CSV exports into JSON reports for data teams\./);
  const commands = f.commands.map((c) => c.command);
  for (const c of ["npm install", "npm run build", "npm test", "npm start", "npm run lint"]) {
    assert.ok(commands.includes(c), c);
  }
  assert.ok(!commands.some((c) => c.includes("prepublishOnly")), "lifecycle hooks are not commands");
  assert.deepEqual(commands.slice(0, 3), ["npm install", "npm run build", "npm test"]);
  assert.deepEqual(
    f.entryPoints.map((e) => [e.label, e.path, e.inTree]),
    [["command `csvreport`", "bin/cli.js", true], ["main module", "src/index.ts", true]],
  );
  assert.equal(f.entryPoints[1].declared, "dist/index.js");
  const index = f.keyFiles.find((k) => k.path === "src/index.ts");
  assert.equal(index?.summary, "Converts parsed CSV rows into report objects, one per row.");
  assert.equal(
    f.keyFiles.find((k) => k.path === "bin/cli.js")?.summary,
    "Command-line entry: reads a CSV path and prints the report.",
  );
  assert.deepEqual(f.dependencies.filter((d) => !d.dev).map((d) => d.name), ["csv-parse", "commander"]);
  assert.deepEqual(f.howTo.map((h) => h.title), ["Installation", "Usage"]);
  assert.match(f.howTo[0].markdown, /npm install -g csvreport/);
  assert.deepEqual(f.symbols.find((s) => s.path === "src/index.ts")?.names, [
    "Report",
    "convert",
    "ReportWriter",
  ]);
});

Deno.test("extractFacts reads a Rust crate: binaries, library root and cargo commands", () => {
  const f = extractFacts(repoContext(RUST_CRATE));
  assert.equal(f.name, "ripfast");
  assert.equal(f.description, "Fast recursive search");
  assert.match(f.purpose[0], /^ripfast searches directories/);
  assert.deepEqual(f.entryPoints.map((e) => [e.label, e.path]), [
    ["library crate root", "src/lib.rs"],
    ["binary `rf`", "src/main.rs"],
  ]);
  assert.deepEqual(f.commands.map((c) => c.command), ["cargo build --release", "cargo test", "cargo run"]);
  assert.deepEqual(f.dependencies.map((d) => [d.name, d.version, d.dev]), [
    ["regex", "1.10", false],
    ["clap", "4.5", false],
    ["tempfile", "3", true],
  ]);
  assert.equal(
    f.keyFiles.find((k) => k.path === "src/lib.rs")?.summary,
    "The search engine behind the rf command.",
  );
  assert.deepEqual(f.symbols.find((s) => s.path === "src/lib.rs")?.names, ["search", "Matcher"]);
});

Deno.test("extractFacts reads a Python project: scripts, pytest and Makefile targets", () => {
  const f = extractFacts(repoContext(PYTHON_PROJECT));
  assert.equal(f.name, "weatherly");
  assert.equal(f.description, "Weather forecasts in your terminal");
  assert.deepEqual(f.entryPoints.map((e) => [e.label, e.path, e.declared]), [
    ["command `weatherly`", "weatherly/cli.py", "weatherly.cli:main"],
  ]);
  const byCommand = new Map(f.commands.map((c) => [c.command, c]));
  assert.equal(byCommand.get("pip install -e .")?.purpose, "install");
  assert.equal(byCommand.get("pytest")?.purpose, "test");
  assert.equal(byCommand.get("weatherly")?.purpose, "run");
  assert.equal(byCommand.get("make test")?.about, "Run the test suite");
  assert.equal(byCommand.get("make lint")?.purpose, "lint");
  assert.deepEqual(f.dependencies.map((d) => [d.name, d.dev]), [["requests", false], ["rich", false], [
    "pytest",
    true,
  ]]);
  assert.equal(
    f.keyFiles.find((k) => k.path === "weatherly/cli.py")?.summary,
    "Command-line interface: parses the city and prints the forecast.",
  );
  assert.equal(f.folders.find((d) => d.path === "tests")?.role, "tests");
});

Deno.test("extractFacts works from the tree alone when no file text is in the context", () => {
  const ctx = { ...repoContext(NODE_PACKAGE), files: [] };
  const f = extractFacts(ctx);
  assert.equal(f.name, "fixture");
  assert.deepEqual(f.purpose, []);
  assert.ok(f.entryPoints.some((e) => e.path === "src/index.ts"));
  assert.ok(f.folders.some((d) => d.path === "src"));
});

Deno.test("manifest parsers", async (t) => {
  await t.step("parseDenoJson reads JSONC with comments, URLs in strings and trailing commas", () => {
    const m = parseDenoJson(
      "deno.jsonc",
      `{
        // the tasks
        "tasks": { "dev": "deno run -A main.ts", "test": { "command": "deno test", "description": "Runs every test" } },
        /* exports */ "exports": "./mod.ts",
        "imports": { "hono": "npm:hono@4", "std/": "https://deno.land/std/", },
      }`,
    );
    assert.deepEqual(m?.commands.map((c) => [c.command, c.purpose, c.runs, c.about]), [
      ["deno task dev", "run", "deno run -A main.ts", undefined],
      ["deno task test", "test", "deno test", "Runs every test"],
    ]);
    assert.deepEqual(m?.entryPoints, [{ label: "main export", path: "./mod.ts" }]);
    assert.deepEqual(m?.dependencies.map((d) => d.name), ["hono"]);
  });
  await t.step("parseGoMod keeps direct requirements only", () => {
    const m = parseGoMod(
      "go.mod",
      "module github.com/acme/tool\n\ngo 1.22\n\nrequire (\n\tgithub.com/spf13/cobra v1.8.0\n\tgolang.org/x/sys v0.20.0 // indirect\n)\n",
    );
    assert.equal(m.name, "github.com/acme/tool");
    assert.deepEqual(m.dependencies.map((d) => d.name), ["github.com/spf13/cobra"]);
  });
  await t.step("parseMakefile lists targets, not variables or pattern rules", () => {
    const m = parseMakefile(
      "Makefile",
      "CC := gcc\nall: build\nbuild: main.o\n%.o: %.c\n\t$(CC) -c $<\nclean:\n\trm -f *.o\n",
    );
    assert.deepEqual(m.commands.map((c) => c.command), ["make all", "make build", "make clean"]);
  });
  await t.step("parseSetupPy reads literal keyword arguments and console scripts", () => {
    const m = parseSetupPy(
      "setup.py",
      `setup(name="tidy", description='Tidies files', install_requires=["click>=8", "pyyaml"],\n  entry_points={"console_scripts": ["tidy = tidy.main:run"]})`,
    );
    assert.equal(m.description, "Tidies files");
    assert.deepEqual(m.dependencies.map((d) => d.name), ["click", "pyyaml"]);
    assert.deepEqual(m.entryPoints, [{ label: "command `tidy`", path: "tidy.main:run" }]);
  });
});

Deno.test("readmeIntro reads an HTML header whose comment or tag is never closed", () => {
  const tagline = "A small library that parses configuration files into typed objects quickly.";
  const header = (tail: string) => `<p align="center">${tagline}</p>\n${tail}\n\n# Title\n`;
  // an unclosed comment hides the rest of the block, as a browser shows it
  assert.deepEqual(readmeIntro(header("<!-- " + "never closed ".repeat(50))), [tagline]);
  // thousands of unclosed starts (once quadratic: seconds of blocked event loop per artifact)
  assert.deepEqual(readmeIntro(header("<!--   <p   <b ".repeat(5000))), [tagline]);
});

Deno.test("readmeIntro skips badges, HTML layout, navigation and install sections", () => {
  const intro = readmeIntro(`<p align="center">
  <img src="logo.svg" />
  <h1 align="center">Zod</h1>
  <p align="center">TypeScript-first schema validation with static type inference<br/>by <a href="https://x.com/c">@c</a></p>
</p>

<div align="center"><a href="https://zod.dev">Docs</a> <span>&nbsp;•&nbsp;</span> <a href="https://discord.gg/x">Discord</a></div>

### [Read the docs →](https://zod.dev/api)

## Installation

This paragraph explains how to install it and must not be taken as the description.

## What is Zod?

Zod is a TypeScript-first validation library. Define a schema and parse some data with it.
`);
  assert.deepEqual(intro, [
    "TypeScript-first schema validation with static type inference",
    "Zod is a TypeScript-first validation library. Define a schema and parse some data with it.",
  ]);
  const [section] = readmeSections(
    "## Install\n\n[![b](x.svg)](y) <b>Note</b>: needs Node 20.\n\n```sh\nnpm i x\n```\n",
  );
  assert.equal(section.markdown, "Note: needs Node 20.\n\n```sh\nnpm i x\n```");
});

Deno.test("OfflineProvider identifies itself as offline", () => {
  assert.equal(provider.name, "offline");
  assert.equal(provider.model, "offline");
  assert.equal(provider.offline, true);
});

Deno.test("generate overview covers purpose, languages, layout, entry points, commands, key files, deps", async () => {
  const { text } = await generate(repoContext(NODE_PACKAGE), "overview");
  for (
    const heading of [
      "# csvreport",
      "## What it is",
      "## Languages",
      "## Layout",
      "## Entry points",
      "## Build, test and run",
      "## Key files",
      "## Dependencies",
    ]
  ) {
    assert.ok(text.includes(`${heading}\n`), heading);
  }
  assert.match(text, /csvreport turns CSV exports into JSON reports/);
  assert.match(text, /Version `1\.2\.0`\./);
  assert.match(text, /- TypeScript: \d+(\.\d)?%/);
  assert.match(text, /\| `src\/` \| 2 \| the source code \(TypeScript\) \|/);
  assert.match(text, /\*\*command `csvreport`\*\*: `bin\/cli\.js`/);
  assert.match(text, /Test: `npm test` — runs `node --test`/);
  assert.match(text, /### From the README: Installation\n\n```sh\nnpm install -g csvreport\n```/);
  assert.match(text, /`src\/index\.ts` — Converts parsed CSV rows into report objects, one per row\./);
  assert.match(text, /`csv-parse` \^5\.5\.0/);
  assert.doesNotMatch(text, /shields\.io|badge|<img|<p |Table of contents/);
});

Deno.test("generate overview depth follows expertise", async () => {
  const ctx = repoContext(NODE_PACKAGE);
  const beginner = (await generate(ctx, "overview", "beginner")).text;
  const expert = (await generate(ctx, "overview", "expert")).text;
  assert.match(beginner, /An entry point is the file a program or library starts from/);
  assert.match(beginner, /Dependencies are other people's libraries/);
  assert.doesNotMatch(beginner, /## Internals/);
  assert.match(expert, /## Internals/);
  assert.match(expert, /`src\/index\.ts`: `Report`, `convert` and `ReportWriter`/);
  assert.match(expert, /Largest source files by tokens/);
  assert.ok(beginner.length < expert.length);
});

Deno.test("generate slides gives 6 to 10 slides, each starting with a # title", async (t) => {
  for (
    const [name, files] of Object.entries({
      node: NODE_PACKAGE,
      rust: RUST_CRATE,
      python: PYTHON_PROJECT,
      empty: {},
    })
  ) {
    await t.step(name, async () => {
      for (const expertise of ["beginner", "intermediate", "expert"] as const) {
        const { text } = await generate(repoContext(files), "slides", expertise);
        const slides = text.split(SLIDE_SEPARATOR).map((s) => s.trim());
        assert.ok(slides.length >= 6 && slides.length <= 10, `${expertise}: ${slides.length} slides`);
        for (const slide of slides) assert.match(slide, /^# \S/);
      }
    });
  }
});

Deno.test("generate podcast alternates two hosts for 16 to 30 plain-text turns", async (t) => {
  for (
    const [name, files] of Object.entries({
      node: NODE_PACKAGE,
      rust: RUST_CRATE,
      python: PYTHON_PROJECT,
      empty: {},
    })
  ) {
    await t.step(name, async () => {
      for (const expertise of ["beginner", "intermediate", "expert"] as const) {
        const { text } = await generate(repoContext(files), "podcast", expertise);
        const lines = text.trimEnd().split("\n");
        assert.ok(lines.length >= 16 && lines.length <= 30, `${expertise}: ${lines.length} turns`);
        lines.forEach((line, i) => {
          assert.match(line, /^(Alex|Sam): \S/);
          assert.ok(
            line.startsWith(`${PODCAST_HOSTS[i % 2]}: `),
            `turn ${i + 1} is ${PODCAST_HOSTS[i % 2]}'s`,
          );
          assert.doesNotMatch(line, /`|\*\*|\]\(|^#/, line);
        });
      }
    });
  }
  await t.step("it talks about the project's facts", async () => {
    const { text } = await generate(repoContext(NODE_PACKAGE), "podcast");
    assert.match(text, /csvreport/);
    assert.match(text, /npm install/);
    assert.match(text, /bin\/cli\.js|src\/index\.ts/);
  });
});

const PASSAGES: Passage[] = [
  {
    path: "src/index.ts",
    startLine: 1,
    endLine: 14,
    score: 9,
    text: NODE_PACKAGE["src/index.ts"].split("\n").slice(0, 14).join("\n"),
  },
  {
    path: "README.md",
    startLine: 7,
    endLine: 9,
    score: 4,
    text: NODE_PACKAGE["README.md"].split("\n").slice(6, 9).join("\n"),
  },
  {
    path: "src/format.ts",
    startLine: 1,
    endLine: 2,
    score: 1,
    text: NODE_PACKAGE["src/format.ts"].trimEnd(),
  },
];

Deno.test("generate concepts cites only lines of the passages it was given", async () => {
  const ctx = repoContext(NODE_PACKAGE, PASSAGES);
  const { text } = await generate(ctx, "concepts", "intermediate", "converting reports");
  const cited = citations(text);
  assert.ok(cited.length >= 2);
  for (const c of cited) assert.ok(within(c, PASSAGES), `${c.path}:${c.start}-${c.end}`);
  assert.equal(cited[0].path, "src/index.ts");
  assert.match(text, /`src\/index\.ts` defines `convert`/);
  assert.match(text, /```ts\n\/\*\*\n \* Converts parsed CSV rows/);
  assert.doesNotMatch(text, /src\/format\.ts/, "a passage that never mentions the concept is left out");
});

Deno.test("generate concepts says plainly when nothing relevant was found", async () => {
  const none = await generate(
    repoContext(NODE_PACKAGE, []),
    "concepts",
    "intermediate",
    "garbage collection",
  );
  assert.match(none.text, /Nothing relevant to “garbage collection” was found/);
  assert.equal(citations(none.text).length, 0);
  const unrelated = await generate(
    repoContext(NODE_PACKAGE, PASSAGES),
    "concepts",
    "intermediate",
    "kubernetes",
  );
  assert.match(unrelated.text, /none of the retrieved passages mention it/);
});

Deno.test("chat answers with the selection first, then cited passages, and says it is offline", async () => {
  const ctx = repoContext(NODE_PACKAGE, PASSAGES);
  const selection: Passage = {
    path: "bin/cli.js",
    startLine: 2,
    endLine: 4,
    text: NODE_PACKAGE["bin/cli.js"].split("\n").slice(1, 4).join("\n"),
  };
  const task: ChatTask = {
    messages: [
      { role: "user", content: "What is this?" },
      { role: "assistant", content: "A CSV tool." },
      { role: "user", content: "How does convert build a report?" },
    ],
    selection,
    context: ctx,
  };
  const { text } = await collect(provider.chat(task, never));
  assert.match(text.split("\n")[0], /Offline mode: no language model is configured/);
  const cited = citations(text);
  assert.equal(cited[0].path, "bin/cli.js");
  assert.ok(within(cited[0], [selection]));
  for (const p of PASSAGES) assert.ok(cited.some((c) => c.path === p.path), p.path);
  for (const c of cited) assert.ok(within(c, [selection, ...PASSAGES]), `${c.path}:${c.start}-${c.end}`);
  assert.match(text, /import \{ convert \} from "\.\.\/dist\/index\.js";/);

  const empty = await collect(
    provider.chat(
      { messages: [{ role: "user", content: "Where is auth?" }], context: repoContext({}) },
      never,
    ),
  );
  assert.match(empty.text, /Nothing in the indexed files matched the question/);
});

Deno.test("generate concepts puts passages naming the concept first and drops partial matches", async () => {
  const passages: Passage[] = [
    {
      path: "src/errors.ts",
      startLine: 1,
      endLine: 2,
      text: "export function formatError(e) {\n  return e;",
    },
    { path: "src/map.ts", startLine: 10, endLine: 11, text: "const map = new Map();\nthrow new Error(map);" },
    {
      path: "src/config.ts",
      startLine: 5,
      endLine: 6,
      text: "export function setErrorMap(fn) {\n  errorMap = fn;",
    },
  ];
  const { text } = await generate(
    repoContext(NODE_PACKAGE, passages),
    "concepts",
    "intermediate",
    "error map",
  );
  assert.deepEqual([...new Set(citations(text).map((c) => c.path))], ["src/config.ts", "src/map.ts"]);
  assert.match(text, /`src\/config\.ts` defines `setErrorMap`/);
});

Deno.test("rankPassages puts source before tests, unless the query is about tests, and drops build output", () => {
  const hits = [{ path: "test/a.test.ts" }, { path: "dist/index.d.ts" }, { path: "src/a.ts" }];
  assert.deepEqual(rankPassages(hits, [], "how is a parsed").map((p) => p.path), [
    "src/a.ts",
    "test/a.test.ts",
  ]);
  assert.deepEqual(rankPassages([{ path: "dist/index.d.ts" }], [], "x").map((p) => p.path), [
    "dist/index.d.ts",
  ]);
  assert.deepEqual(rankPassages(hits, [], "how is a tested").map((p) => p.path)[0], "test/a.test.ts");
});

Deno.test("generate streams several pieces and ends with the usage", async () => {
  const { text, deltas } = await generate(repoContext(NODE_PACKAGE), "overview");
  assert.ok(deltas.filter((d) => d.text).length > 3);
  const last = deltas[deltas.length - 1];
  assert.deepEqual(last, { usage: { inputTokens: 0, outputTokens: countTokens(text) } });
  assert.ok(deltas.slice(0, -1).every((d) => d.text && !d.usage));

  const counted = new OfflineProvider({ countTokens: (t) => t.length });
  const chat = await collect(
    counted.chat({
      messages: [{ role: "user", content: "convert" }],
      context: repoContext(NODE_PACKAGE, PASSAGES),
    }, never),
  );
  assert.equal(chat.deltas.at(-1)?.usage?.outputTokens, chat.text.length);
});

Deno.test("generate stops when the signal aborts", async (t) => {
  await t.step("mid-stream: no more text, and the stream rejects", async () => {
    const controller = new AbortController();
    const seen: Delta[] = [];
    await assert.rejects(async () => {
      for await (
        const d of provider.generate({
          kind: "overview",
          expertise: "expert",
          context: repoContext(NODE_PACKAGE),
        }, controller.signal)
      ) {
        seen.push(d);
        controller.abort();
      }
    }, (e: Error) => e.name === "AbortError");
    assert.equal(seen.length, 1);
  });
  await t.step("before it starts: nothing is yielded", async () => {
    const controller = new AbortController();
    controller.abort();
    const seen: Delta[] = [];
    await assert.rejects(async () => {
      for await (
        const d of provider.chat(
          { messages: [{ role: "user", content: "x" }], context: repoContext({}) },
          controller.signal,
        )
      ) {
        seen.push(d);
      }
    });
    assert.equal(seen.length, 0);
  });
});
