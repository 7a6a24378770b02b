/**
 * Compiles each AssemblyScript module in lib/wasm (shard_counter.ts, token_counter.ts) to the
 * binary beside it, which lib/shard_counter.ts and lib/tokens.ts load. The binaries are committed,
 * so the app, its tests and Deploy need no compiler; tests/lib/wasm_build_test.ts checks they are
 * what this build makes from the sources.
 *
 *   deno task build:wasm
 */
import asc from "assemblyscript/asc";

const ROOT = new URL("../", import.meta.url);
export const MODULES = ["shard_counter", "token_counter"];

/** Where the binary of a module is. */
export const wasmFile = (module: string) => new URL(`../lib/wasm/${module}.wasm`, import.meta.url);

/**
 * The module's source compiled: optimised; the minimal runtime's allocator (the modules make no
 * garbage to collect). The source is named relative to ROOT, so the binary names no checkout's path.
 */
export async function compileWasm(module: string): Promise<Uint8Array> {
  let binary: Uint8Array | null = null;
  const { error, stderr } = await asc.main(
    [
      `lib/wasm/${module}.ts`,
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
  for (const module of MODULES) {
    const binary = await compileWasm(module);
    await Deno.writeFile(wasmFile(module), binary);
    console.error(`wrote ${wasmFile(module).pathname} (${binary.byteLength} bytes)`);
  }
}
