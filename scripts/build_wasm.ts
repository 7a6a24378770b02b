/**
 * Compiles lib/wasm/shard_counter.ts (AssemblyScript) to lib/wasm/shard_counter.wasm, the binary
 * lib/shard_counter.ts loads. The binary is committed, so the app, its tests and Deploy need no
 * compiler; tests/lib/shard_counter_test.ts checks it is what this build makes from the source.
 *
 *   deno task build:wasm
 */
import asc from "assemblyscript/asc";

const ROOT = new URL("../", import.meta.url);
/** Relative to ROOT: the binary names no checkout's own path. */
const SOURCE = "lib/wasm/shard_counter.ts";
export const WASM = new URL("../lib/wasm/shard_counter.wasm", import.meta.url);

/** The source compiled: optimised; the minimal runtime's allocator (the module makes no garbage-collected objects). */
export async function compileShardCounter(): Promise<Uint8Array> {
  let binary: Uint8Array | null = null;
  const { error, stderr } = await asc.main(
    [
      SOURCE,
      "--baseDir",
      ROOT.pathname,
      "--optimize",
      "-O3",
      "--runtime",
      "minimal",
      "--noAssert",
      "--outFile",
      "out.wasm",
    ],
    {
      writeFile: (name: string, contents: Uint8Array | string) => {
        if (name.endsWith(".wasm") && typeof contents !== "string") binary = contents;
      },
    },
  );
  if (error) throw new Error(`asc failed: ${error.message}\n${stderr.toString()}`);
  if (!binary) throw new Error("asc wrote no .wasm");
  return binary;
}

if (import.meta.main) {
  const binary = await compileShardCounter();
  await Deno.writeFile(WASM, binary);
  console.error(`wrote ${WASM.pathname} (${binary.byteLength} bytes)`);
}
