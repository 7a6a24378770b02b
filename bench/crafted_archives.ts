/**
 * Archives crafted against the ingest's memory bound (issue 2: peak RSS < 200 MB at any size): each
 * within the default limits, and each made of what makes the ingest hold more than its bytes —
 * new words the token counter must remember, runs it counts in windows, words the index keeps
 * per shard, and paths the tree keeps. `deno task bench ingest --only crafted --crafted all`.
 */
import { buildTarGz, type FixtureEntry } from "../tests/fakes/archives.ts";

const MB = 1_000_000;

/** Random lower-case letters, a space after every `wordLength` of them (none when 0). */
function letters(bytes: number, wordLength: number): Uint8Array {
  const out = new Uint8Array(bytes);
  for (let at = 0; at < bytes; at += 65_536) crypto.getRandomValues(out.subarray(at, at + 65_536));
  for (let i = 0; i < bytes; i++) {
    out[i] = wordLength && (i + 1) % (wordLength + 1) === 0 ? 0x20 : 0x61 + (out[i] % 26);
  }
  return out;
}

const files = (count: number, content: () => Uint8Array): FixtureEntry[] =>
  Array.from({ length: count }, (_, i) => ({ path: `words/file${i}.txt`, content: content() }));

/**
 * One-line files under ten folders of 91 characters: 8,900 paths of ~930 bytes, just under the
 * 8 MiB the tree may list (MAX_TREE_BYTES).
 */
function longPaths(): FixtureEntry[] {
  return Array.from({ length: 8_900 }, (_, i) => {
    const folders = Array.from({ length: 10 }, (_, d) => `${"abcdefghij"[d].repeat(90)}${(i >> d) & 7}`);
    return { path: `${folders.join("/")}/file${i}.ts`, content: `export const v${i} = ${i};\n` };
  });
}

export const CRAFTED = {
  "long-words": () => files(40, () => letters(MB, 255)),
  "letter-runs": () => files(40, () => letters(MB, 0)),
  "distinct-words": () => files(40, () => letters(MB, 8)),
  "long-paths": longPaths,
};

export type CraftedName = keyof typeof CRAFTED;

export const isCrafted = (name: string): name is CraftedName => Object.hasOwn(CRAFTED, name);

/** Writes the crafted archive `name` (one top folder, as GitHub's) into `dir`; returns its path. */
export async function writeCrafted(name: CraftedName, dir: string): Promise<string> {
  const path = `${dir}/${name}.tar.gz`;
  await Deno.writeFile(path, await buildTarGz(CRAFTED[name](), { prefix: `crafted-${name}` }));
  return path;
}
