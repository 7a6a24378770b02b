import assert from "node:assert/strict";
import MiniSearch from "minisearch";
import { getBlobMeta, putBlob, readBlob } from "../../lib/blobs.ts";
import { keys } from "../../lib/keys.ts";
import { KvBatch } from "../../lib/kv_util.ts";
import { openShard } from "../../lib/index_shard.ts";
import {
  chunkLines,
  forEachToken,
  type Hit,
  INDEX_OPTIONS,
  IndexBuilder,
  searchRepo,
} from "../../lib/retrieval.ts";
import { randomTexts, regexTokens } from "../tokenizer_reference.ts";

const FILES: Record<string, string> = {
  "README.md": "# Demo\n\nParses repository addresses and renders HTML pages.\n",
  "src/github_url.ts": [
    "/** Parses a GitHub address. */",
    "export function parseGitHubUrl(input: string) {",
    "  return new URL(input);",
    "}",
  ].join("\n"),
  "src/render.ts": "export class HTMLParser {\n  feed(chunk: string) {}\n}\n",
  "src/snake.py": "def load_user_config(path):\n    return open(path).read()\n",
  "docs/notes.md": "Nothing about the topic here.\n".repeat(30),
};

/** Each index under a repo id of its own: searches keep the shards they read in a per-process cache. */
async function buildIndex(files: Record<string, string>) {
  const kv = await Deno.openKv(":memory:");
  const batch = new KvBatch(kv);
  const id = `repo-${crypto.randomUUID()}`;
  const builder = new IndexBuilder(id, "gen", batch);
  for (const [path, text] of Object.entries(files)) await builder.add(path, text);
  const indexShards = await builder.finish();
  await batch.flush();
  return { kv, repo: { id, gen: "gen", indexShards } };
}

Deno.test("searchRepo finds chunks by words, identifier parts and prefixes, best first", async (t) => {
  const { kv, repo } = await buildIndex(FILES);
  try {
    assert.equal(repo.indexShards, 1);
    const top = async (q: string) => (await searchRepo(kv, repo, q, 3))[0]?.path;
    await t.step("camelCase parts", async () => assert.equal(await top("github url"), "src/github_url.ts"));
    await t.step(
      "the whole identifier",
      async () => assert.equal(await top("parseGitHubUrl"), "src/github_url.ts"),
    );
    await t.step(
      "an acronym split from a word",
      async () => assert.equal(await top("parser"), "src/render.ts"),
    );
    await t.step("snake_case parts", async () => assert.equal(await top("user config"), "src/snake.py"));
    await t.step(
      "a prefix of four letters or more",
      async () => assert.equal(await top("snak"), "src/snake.py"),
    );
    await t.step("no hit for unknown words or an empty query", async () => {
      assert.deepEqual(await searchRepo(kv, repo, "zebra"), []);
      assert.deepEqual(await searchRepo(kv, repo, "  !? "), []);
    });
    await t.step("hits carry line ranges and rounded scores, in score order", async () => {
      const hits = await searchRepo(kv, repo, "parses", 10);
      assert.ok(hits.length >= 2);
      for (const h of hits) assert.ok(h.startLine >= 1 && h.endLine >= h.startLine);
      assert.deepEqual(hits.map((h) => h.score), hits.map((h) => h.score).sort((a, b) => b - a));
    });
  } finally {
    kv.close();
  }
});

Deno.test("searchRepo merges hits across shards and ignores an index of another format", async (t) => {
  const filler = "alpha beta gamma delta\n".repeat(2000);
  const files: Record<string, string> = {};
  for (let i = 0; i < 100; i++) files[`gen/f${i}.txt`] = filler;
  files["late/needle.ts"] = "export const needleInHaystack = 1;\n";
  const { kv, repo } = await buildIndex(files);
  try {
    assert.ok(repo.indexShards >= 2, `${repo.indexShards} shards`);
    await t.step("a file indexed in the last shard is found", async () => {
      const hits = await searchRepo(kv, repo, "needle haystack");
      assert.equal(hits[0].path, "late/needle.ts");
    });
    await t.step(
      "a shard written by earlier versions (MiniSearch's own JSON) is still searched",
      async () => {
        const index = new MiniSearch(INDEX_OPTIONS);
        index.add({
          id: 0,
          path: "old/needle.ts",
          startLine: 3,
          endLine: 9,
          text: "const needleInHaystack = 1;",
        });
        await putBlob(
          kv,
          keys.repoIndexShard("v1", "gen", 0),
          new TextEncoder().encode(JSON.stringify(index)),
        );
        const hits = await searchRepo(kv, { id: "v1", gen: "gen", indexShards: 1 }, "needle haystack");
        assert.deepEqual(hits.map((h) => [h.path, h.startLine, h.endLine]), [["old/needle.ts", 3, 9]]);
      },
    );
    await t.step("a shard in the previous compact layout (repolm-bm25-1) is still searched", async () => {
      const v1 = {
        format: "repolm-bm25-1",
        paths: ["old/compact.ts"],
        chunks: [0, 4, 12],
        fieldLength: [3, 2],
        averageFieldLength: [3, 2],
        terms: ["old", "compact", "ts", "needle", "haystack"],
        postings: [[[0, 1], []], [[0, 1], []], [[0, 1], []], [[], [0, 2]], [[], [0, 1]]],
      };
      await putBlob(kv, keys.repoIndexShard("v1c", "gen", 0), new TextEncoder().encode(JSON.stringify(v1)));
      const hits = await searchRepo(kv, { id: "v1c", gen: "gen", indexShards: 1 }, "needle haystack");
      assert.deepEqual(hits.map((h) => [h.path, h.startLine, h.endLine]), [["old/compact.ts", 4, 12]]);
    });
    await t.step("a shard in an unknown format yields nothing instead of failing", async () => {
      await putBlob(
        kv,
        keys.repoIndexShard("old", "gen", 0),
        new TextEncoder().encode('{"documentCount":1}'),
      );
      assert.deepEqual(await searchRepo(kv, { id: "old", gen: "gen", indexShards: 1 }, "needle"), []);
    });
  } finally {
    kv.close();
  }
});

Deno.test("chunkLines splits into 40-line chunks, shorter when lines are long, skipping blank ones", () => {
  const lines = Array.from({ length: 95 }, (_, i) => `line ${i + 1}`).join("\n");
  assert.deepEqual(
    chunkLines(lines).map((c) => [c.startLine, c.endLine]),
    [[1, 40], [41, 80], [81, 95]],
  );
  const long = `${"x".repeat(3000)}\n${"y".repeat(3000)}\n`;
  assert.deepEqual(chunkLines(long).map((c) => [c.startLine, c.endLine]), [[1, 1], [2, 3]]);
  assert.deepEqual(chunkLines("\n \n\t\n"), []);
  assert.deepEqual(chunkLines("a\nb"), [{ startLine: 1, endLine: 2, start: 0, end: 3 }]);
});

const tokens = (text: string) => {
  const out: string[] = [];
  forEachToken(text, (start, end) => out.push(text.slice(start, end)));
  return out;
};

Deno.test("forEachToken finds words and the parts of identifiers, as the regex tokenizer did", () => {
  assert.deepEqual(tokens("parseGitHubUrl(x_1)"), [
    "parseGitHubUrl",
    "parse",
    "Git",
    "Hub",
    "Url",
    "x_1",
    "x",
    "1",
  ]);
  assert.deepEqual(tokens("HTMLParser ABC é__init__"), [
    "HTMLParser",
    "HTML",
    "Parser",
    "ABC",
    "__init__",
    "",
    "",
    "init",
    "",
    "",
  ]);
  for (const text of randomTexts(30_000)) {
    assert.deepEqual(tokens(text), regexTokens(text), JSON.stringify(text));
  }
});

/** What MiniSearch's own `add()` and serialisation make of the chunks of `files`. */
function miniSearchOf(files: Record<string, string>) {
  const reference = new MiniSearch(INDEX_OPTIONS);
  let id = 0;
  for (const [path, text] of Object.entries(files)) {
    for (const { startLine, endLine, start, end } of chunkLines(text)) {
      reference.add({ id: id++, path, startLine, endLine, text: text.slice(start, end) });
    }
  }
  return JSON.parse(JSON.stringify(reference));
}

/** A stored shard with every term loaded: the index a query matching every term would search. */
async function wholeShard(kv: Deno.Kv, repo: { id: string; gen: string }, shard: number) {
  const base = keys.repoIndexShard(repo.id, repo.gen, shard);
  const stored = openShard((await readBlob(kv, base, (await getBlobMeta(kv, base))!))!, INDEX_OPTIONS);
  return stored!.indexFor([{ term: "", prefix: true }])!;
}

async function loadedShard(kv: Deno.Kv, repo: { id: string; gen: string }, shard: number) {
  return JSON.parse(JSON.stringify(await wholeShard(kv, repo, shard)));
}

const byTerm = (index: [string, unknown][]) => [...index].sort((a, b) => (a[0] < b[0] ? -1 : 1));

function assertSameIndex(written: { index: [string, unknown][] }, expected: { index: [string, unknown][] }) {
  assert.deepEqual({ ...written, index: byTerm(written.index) }, {
    ...expected,
    index: byTerm(expected.index),
  });
}

const EDGE_FILES: Record<string, string> = {
  ...FILES,
  "src/edge.ts": "_private __dunder__ HTTPServer XMLHttpRequest getX a1B2 ALLCAPS snake_Case_mix\n",
  "src/repeat.ts": "const parse = parse(parse);\n".repeat(60),
  "src/unicode.ts": "export const café = 'naïve'; // 日本語 ünïcödé\n\n   \n\u00a0\u2028\n",
};

Deno.test("a shard written by ingest loads as exactly what MiniSearch builds and serialises for the same chunks", async () => {
  const { kv, repo } = await buildIndex(EDGE_FILES);
  try {
    assert.equal(repo.indexShards, 1);
    const written = await loadedShard(kv, repo, 0);
    const expected = miniSearchOf(EDGE_FILES);
    assertSameIndex(written, expected);
    // and MiniSearch scores a query over both the same (prefix matches may be listed in another order)
    const query = "parse github url server";
    const search = (json: unknown) =>
      MiniSearch.loadJSON(JSON.stringify(json), INDEX_OPTIONS)
        .search(query, { boost: { path: 2 }, prefix: true })
        .map((r) => ({ id: r.id, score: r.score, terms: [...r.terms].sort() }));
    assert.deepEqual(search(written), search(expected));
    assert.ok(search(written).length > 0);
  } finally {
    kv.close();
  }
});

Deno.test("every later shard is built afresh: it loads as what MiniSearch makes of its own chunks", async () => {
  // Two files that fill a shard (2 MB) each, with the same words in the same chunks: the second
  // shard sees every term at the same id as the first did, and a word only in the last chunk at the
  // same chunk id too. Then a shard of other files.
  const edgeText = Object.values(EDGE_FILES).join("\n");
  const big = `${edgeText.repeat(Math.ceil((2.1 * 1024 * 1024) / edgeText.length))}\nzebraOnlyAtTheEnd\n`;
  const { kv, repo } = await buildIndex({ "big/one.ts": big, "big/two.ts": big, ...EDGE_FILES });
  try {
    assert.equal(repo.indexShards, 3);
    assertSameIndex(await loadedShard(kv, repo, 0), miniSearchOf({ "big/one.ts": big }));
    assertSameIndex(await loadedShard(kv, repo, 1), miniSearchOf({ "big/two.ts": big }));
    assertSameIndex(await loadedShard(kv, repo, 2), miniSearchOf(EDGE_FILES));
  } finally {
    kv.close();
  }
});

Deno.test("a file of more distinct words than a shard takes ends that shard in its middle; both parts are searched", async () => {
  // 70,000 distinct words, 40 to a line: ~600 KB, under the 2 MB of text that ends a shard
  const words = Array.from({ length: 70_000 }, (_, i) => `w${i.toString(36)}x`);
  const lines = [];
  for (let i = 0; i < words.length; i += 40) lines.push(words.slice(i, i + 40).join(" "));
  const { kv, repo } = await buildIndex({ "words.txt": lines.join("\n"), ...EDGE_FILES });
  try {
    assert.equal(repo.indexShards, 2);
    for (const [word, line] of [[words[0], 1], [words[words.length - 1], lines.length]] as const) {
      const [hit] = await searchRepo(kv, repo, word, 1);
      assert.equal(hit?.path, "words.txt", word);
      assert.ok(
        hit.startLine <= line && line <= hit.endLine,
        `${word}: lines ${hit.startLine}-${hit.endLine}`,
      );
    }
    assert.equal((await searchRepo(kv, repo, "parseGitHubUrl", 1))[0]?.path, "src/github_url.ts");
  } finally {
    kv.close();
  }
});

Deno.test("paths count toward a shard's size: tiny files with long paths fill several shards", async () => {
  // 2,400 paths of ~900 characters are ~2.1 Mi characters; the files' text is ~20 KB
  const folder = Array.from({ length: 9 }, (_, i) => "abcdefghi"[i].repeat(99)).join("/");
  const files: Record<string, string> = {};
  for (let i = 0; i < 2_400; i++) files[`${folder}/leaf${i}.ts`] = `export const v${i} = ${i};\n`;
  const { kv, repo } = await buildIndex(files);
  try {
    assert.equal(repo.indexShards, 2);
    for (const i of [0, 2_399]) {
      assert.equal((await searchRepo(kv, repo, `leaf${i}`, 1))[0]?.path, `${folder}/leaf${i}.ts`);
    }
  } finally {
    kv.close();
  }
});

/** Hits in a stable order, to compare searches whose equal scores may come in another order. */
const sortedHits = (hits: Hit[]) =>
  [...hits].sort((a, b) => a.path.localeCompare(b.path) || a.startLine - b.startLine || a.score - b.score);

Deno.test("a search loads only the terms its query can match, and scores as over whole shards", async () => {
  let seed = 11;
  const random = () => (seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff) / 0x80000000;
  const pick = <T>(items: T[]) => items[Math.floor(random() * items.length)];
  const words = [
    "parse",
    "parser",
    "parsed",
    "render",
    "renderer",
    "load",
    "loader",
    "config",
    "cache",
    "cached",
  ];
  const idents = ["parseConfig", "renderPage", "load_user", "HTTPServer", "cacheKey", "pa", "x1"];
  const files: Record<string, string> = { ...EDGE_FILES };
  for (let f = 0; f < 1500; f++) { // ~2.8 MB: the hits span shards
    const lines = Array.from(
      { length: 20 + Math.floor(random() * 80) },
      () =>
        Array.from({ length: 1 + Math.floor(random() * 8) }, () => pick(random() < 0.7 ? words : idents))
          .join(" "),
    );
    files[`src/${pick(words)}/${pick(idents)}${f}.ts`] = lines.join("\n");
  }
  const { kv, repo } = await buildIndex(files);
  try {
    assert.ok(repo.indexShards >= 2, `${repo.indexShards} shards`);
    const whole: MiniSearch[] = [];
    for (let shard = 0; shard < repo.indexShards; shard++) whole.push(await wholeShard(kv, repo, shard));
    const options = { boost: { path: 2 }, prefix: (term: string) => term.length > 3 };
    const queries = [
      "parse",
      "pars",
      "pa",
      "rend config",
      "parseConfig renderPage",
      "HTTP server",
      "load_user cache",
      "alpha parse",
      "Cach",
      "zebra",
      ...Array.from(
        { length: 40 },
        () => `${pick(words).slice(0, 2 + Math.floor(random() * 5))} ${pick(idents)}`,
      ),
    ];
    for (const query of queries) {
      const expected: Hit[] = whole.flatMap((index) =>
        index.search(query, options).map((r) => ({
          path: r.path,
          startLine: r.startLine,
          endLine: r.endLine,
          score: Math.round(r.score * 1000) / 1000,
        }))
      );
      const got = await searchRepo(kv, repo, query, 1_000_000);
      assert.equal(got.length, expected.length, query);
      const wanted = sortedHits(expected);
      sortedHits(got).forEach((hit, i) => {
        const want = wanted[i];
        assert.deepEqual({ ...hit, score: 0 }, { ...want, score: 0 }, query);
        assert.ok(Math.abs(hit.score - want.score) <= 0.001, `${query}: ${hit.score} vs ${want.score}`);
      });
    }
    // and what it loaded for one query is the terms that query can match, no others
    const base = keys.repoIndexShard(repo.id, repo.gen, 1);
    const stored = openShard((await readBlob(kv, base, (await getBlobMeta(kv, base))!))!, INDEX_OPTIONS)!;
    const termsOf = (index: MiniSearch) =>
      JSON.parse(JSON.stringify(index)).index.map(([term]: [string]) => term);
    const partial = stored.indexFor([{ term: "parse", prefix: false }, { term: "rend", prefix: true }])!;
    const matching = termsOf(whole[1]).filter((term: string) => term === "parse" || term.startsWith("rend"));
    assert.ok(matching.includes("renderer") && matching.length < termsOf(whole[1]).length / 2);
    assert.deepEqual(termsOf(partial).sort(), matching.sort());
    assert.equal(stored.indexFor([{ term: "zebra", prefix: true }]), null);
  } finally {
    kv.close();
  }
});

Deno.test("questions that arrive together read each shard once", async () => {
  const { kv, repo } = await buildIndex({ "big/one.ts": "parse the config\n".repeat(140_000), ...FILES });
  try {
    assert.equal(repo.indexShards, 2);
    let shardReads = 0;
    const counting = new Proxy(kv, {
      get(target, name) {
        if (name === "get") {
          return (key: Deno.KvKey) => {
            if (key.includes("index")) shardReads++;
            return target.get(key);
          };
        }
        const value = Reflect.get(target, name);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => searchRepo(counting, repo, "parse config")),
    );
    assert.equal(shardReads, repo.indexShards);
    for (const hits of answers) assert.deepEqual(hits, answers[0]);
    assert.ok(answers[0].length > 0);
    await searchRepo(counting, repo, "github url");
    assert.equal(shardReads, repo.indexShards, "read again, though cached");
  } finally {
    kv.close();
  }
});
