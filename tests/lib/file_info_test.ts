import assert from "node:assert/strict";
import { detectLanguage, filePriority } from "../../lib/file_info.ts";

Deno.test("detectLanguage reads common extensions the common way", () => {
  const expected: Record<string, string> = {
    "src/main.rs": "Rust",
    "a/b.ts": "TypeScript",
    "README.md": "Markdown",
    "x.py": "Python",
    "index.html": "HTML",
    "schema.sql": "SQL",
    "view.m": "Objective-C",
    "ci.yml": "YAML",
    "Makefile": "Makefile",
    "Dockerfile": "Dockerfile",
    "notes.unknownext": "Text",
  };
  for (const [path, lang] of Object.entries(expected)) assert.equal(detectLanguage(path), lang, path);
});

Deno.test("filePriority puts README and manifests first, tests and docs last", () => {
  const ordered = [
    "README.md",
    "package.json",
    "src/index.ts",
    "src/lib/util/deep.ts",
    "docs/guide.md",
    "tests/a_test.ts",
  ];
  const scores = ordered.map(filePriority);
  assert.deepEqual([...scores].sort((a, b) => b - a), scores);
});
