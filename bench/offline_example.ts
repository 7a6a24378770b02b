/**
 * Shows what the offline provider writes for a real package, as a Markdown document for the docs:
 * the tarball goes through the real ingest (filters, file facts, retrieval index) into an
 * in-memory KV, a RepoContext is built from it, and the four artifacts plus one chat answer are
 * printed, each fenced exactly as the provider wrote it.
 *
 *   npm pack zod@4.6.7
 *   deno run -A bench/offline_example.ts zod-4.6.7.tgz --concept="error map" \
 *     --question="How are errors reported?" > docs/OFFLINE_EXAMPLE.md
 *   deno fmt docs/OFFLINE_EXAMPLE.md   # wraps the prose; the fenced artifacts are left as written
 */
import { parseArgs } from "node:util";
import { readBlob } from "../lib/blobs.ts";
import { byPriority, withinBudget } from "../lib/digest.ts";
import { ingestArchive, type Tree } from "../lib/ingest.ts";
import { keys } from "../lib/keys.ts";
import { KvBatch } from "../lib/kv_util.ts";
import { OfflineProvider } from "../lib/llm/offline.ts";
import { fence } from "../lib/llm/offline_markdown.ts";
import type { ArtifactKind, Delta, Expertise, Passage, RepoContext } from "../lib/llm/types.ts";
import { findFileBlob } from "../lib/repos.ts";
import { searchRepo } from "../lib/retrieval.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    concept: { type: "string", default: "validation" },
    question: { type: "string" },
    expertise: { type: "string", default: "intermediate" },
    budget: { type: "string", default: "60000" },
    hits: { type: "string", default: "12" },
  },
});
const tarball = positionals[0];
if (!tarball || !["beginner", "intermediate", "expert"].includes(values.expertise!)) {
  console.error(
    "usage: deno run -A bench/offline_example.ts PACKAGE.tgz [--concept=X] [--question=Y] [--expertise=beginner|intermediate|expert]",
  );
  Deno.exit(2);
}
const expertise = values.expertise as Expertise;
const budget = Number(values.budget);
const hitLimit = Number(values.hits);

const kv = await Deno.openKv(":memory:");
const repo = { id: "example", gen: "g1", indexShards: 0 };
const MB = 1024 * 1024;
const file = await Deno.open(tarball);
const { stats, indexShards } = await ingestArchive({
  kv,
  repoId: repo.id,
  gen: repo.gen,
  archive: file.readable,
  stripSegments: 1, // npm tarballs wrap everything in `package/`
  filters: {},
  limits: {
    fileBytes: MB,
    files: 20_000,
    totalBytes: 200 * MB,
    decompressedBytes: 500 * MB,
    treeBytes: 16 * MB,
  },
  batch: new KvBatch(kv),
  signal: new AbortController().signal,
});
repo.indexShards = indexShards;
const decode = (bytes: Uint8Array | null) => new TextDecoder().decode(bytes ?? new Uint8Array());
const tree: Tree = JSON.parse(decode(await readBlob(kv, keys.repoTree(repo.id, repo.gen))));
const ranked = byPriority(tree.files);
const fileText = async (path: string) => {
  const found = await findFileBlob(kv, repo, path);
  return decode(found && await readBlob(kv, found.key, found.meta));
};
const files = await Promise.all(
  withinBudget(ranked, budget).map(async (f) => ({
    path: f.path,
    text: await fileText(f.path),
    tokens: f.tokens,
  })),
);

/** Retrieval hits with their lines' text: what the chat and concepts routes hand a provider. */
async function passages(query: string): Promise<Passage[]> {
  const hits = await searchRepo(kv, repo, query, hitLimit);
  return Promise.all(hits.map(async (h) => ({
    ...h,
    text: (await fileText(h.path)).split("\n").slice(h.startLine - 1, h.endLine).join("\n"),
  })));
}

const filename = tarball.split("/").pop()!;
const base: RepoContext = {
  title: filename,
  source: { type: "upload", filename },
  stats,
  tree: ranked,
  files,
  passages: [],
};
const provider = new OfflineProvider();
const signal = new AbortController().signal;

async function collect(stream: AsyncIterable<Delta>): Promise<string> {
  let text = "";
  for await (const d of stream) text += d.text ?? "";
  return text;
}

const shellWord = (s: string) => (/^[\w./@:-]+$/.test(s) ? s : `"${s.replace(/(["\\$`])/g, "\\$1")}"`);
const quote = (arg: string) => {
  const option = arg.match(/^(--[\w-]+=)(.*)$/s);
  return option ? `${option[1]}${shellWord(option[2])}` : shellWord(arg);
};
const packed = filename.match(/^(.+)-(\d+\.\d+\.\d+[^/]*)\.tgz$/);
const commands = [
  ...(packed ? [`npm pack ${packed[1]}@${packed[2]}`] : []),
  `deno run -A bench/offline_example.ts ${Deno.args.map(quote).join(" ")} > docs/OFFLINE_EXAMPLE.md`,
  "deno fmt docs/OFFLINE_EXAMPLE.md",
];
const out: string[] = [
  `# What the offline provider writes: \`${filename}\``,
  "With no model API key set, RepoLM uses its offline provider: every artifact is written from facts read " +
  "out of the repository (README, manifests, file tree, doc comments) and every chat answer is the most " +
  "relevant code, cited. Below is its output, unedited, for a real npm package, ingested by the same " +
  "pipeline an upload goes through. Made with:",
  fence(commands.join("\n"), "sh"),
  `The package holds ${stats.files} stored files (${stats.skipped} skipped); the context holds the ` +
  `${files.length} most important of them that fit ${budget.toLocaleString("en-US")} tokens, and concepts ` +
  `and chat get the top ${hitLimit} retrieval hits. Expertise: ${expertise}. Each artifact is shown as ` +
  "the Markdown (or plain text) the API returns, in a plain fence so that nothing reformats it.",
];
const sections: [string, ArtifactKind][] = [
  ["Overview", "overview"],
  ["Slides", "slides"],
  ["Podcast script", "podcast"],
  [`Concept: ${values.concept}`, "concepts"],
];
for (const [heading, kind] of sections) {
  const context = kind === "concepts" ? { ...base, passages: await passages(values.concept!) } : base;
  const text = await collect(
    provider.generate({ kind, expertise, concept: values.concept, context }, signal),
  );
  out.push(`## ${heading}`, fence(text, "text"));
}
if (values.question) {
  const context = { ...base, passages: await passages(values.question) };
  const text = await collect(
    provider.chat({ messages: [{ role: "user", content: values.question }], context }, signal),
  );
  out.push(`## Chat: “${values.question}”`, fence(text, "text"));
}
console.log(out.join("\n\n"));
kv.close();
