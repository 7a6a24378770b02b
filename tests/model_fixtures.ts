/** Shared set-up for model-work tests: a ready repo in an app wired to the fake OpenAI server. */
import { buildTarGz, type FixtureEntry } from "./fakes/archives.ts";
import { type FakeOpenAI, startFakeOpenAI, type StartFakeOpenAIOptions } from "./fakes/openai.ts";
import { startTestApp, type TestApp, type TestAppOptions } from "./helpers.ts";

export const SAMPLE_REPO: FixtureEntry[] = [
  {
    path: "README.md",
    content: "# Widget\n\nWidget parses widget files and renders them.\n\n## Usage\n\n    npm start\n",
  },
  {
    path: "package.json",
    content: JSON.stringify(
      { name: "widget", description: "Parses widgets", scripts: { start: "node src/index.js" } },
      null,
      2,
    ),
  },
  {
    path: "src/index.js",
    content: "import { parseWidget } from './parser.js';\nconsole.log(parseWidget(process.argv[2]));\n",
  },
  {
    path: "src/parser.js",
    content: Array.from(
      { length: 60 },
      (_, i) =>
        i === 30 ? "export function parseWidget(text) { return text.split(':'); }" : `// line ${i + 1}`,
    )
      .join("\n"),
  },
];

/** Uploads `entries` as a .tar.gz and returns the ready repo's id. */
export async function uploadRepo(app: TestApp, entries: FixtureEntry[] = SAMPLE_REPO): Promise<string> {
  const form = new FormData();
  form.append("file", new Blob([await buildTarGz(entries)]), "repo.tar.gz");
  const { status, body } = await app.json<{ repo: { id: string; status: string } }>("/api/repos/upload", {
    method: "POST",
    body: form,
  });
  if (status !== 200 || body.repo.status !== "ready") {
    throw new Error(`upload failed: ${status} ${JSON.stringify(body)}`);
  }
  return body.repo.id;
}

export interface ModelWorld {
  app: TestApp;
  llm: FakeOpenAI;
  repoId: string;
  close(): Promise<void>;
}

/** An app whose provider is the fake OpenAI server (through the real `openai` client), with a repo ingested. */
export async function startModelWorld(
  fake: StartFakeOpenAIOptions = {},
  env: Record<string, string> = {},
  options: TestAppOptions = {},
): Promise<ModelWorld> {
  const llm = await startFakeOpenAI({ apiKey: "test-key", ...fake });
  const app = await startTestApp({
    ...options,
    env: {
      OPENAI_API_KEY: "test-key",
      OPENAI_BASE_URL: llm.baseUrl,
      LLM_MODEL: "fake-model",
      LLM_TIMEOUT: "3s",
      ...env,
    },
  });
  const repoId = await uploadRepo(app);
  return {
    app,
    llm,
    repoId,
    async close() {
      await app.close();
      await llm.close();
    },
  };
}
