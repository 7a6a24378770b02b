/**
 * Loads the modules of lib/wasm: AssemblyScript compiled to committed binaries by
 * `deno task build:wasm` (scripts/build_wasm.ts).
 */

/** An instance of `lib/wasm/NAME.wasm`, with the imports it needs beyond AssemblyScript's `abort`. */
export async function loadWasm<Exports>(
  name: string,
  imports: WebAssembly.Imports = {},
): Promise<() => Exports> {
  const module = await WebAssembly.compile(
    await Deno.readFile(new URL(`./wasm/${name}.wasm`, import.meta.url)),
  );
  const abort = () => {
    throw new Error(`${name}.wasm aborted`);
  };
  return () => new WebAssembly.Instance(module, { env: { abort }, ...imports }).exports as Exports;
}

/**
 * A random 64-bit seed for a module's hash tables, as two 32-bit halves: a seed per instance, so
 * that no crafted file can make its words collide (lib/wasm/spans.ts).
 */
export function randomSeed(): [number, number] {
  const [high, low] = crypto.getRandomValues(new Uint32Array(2));
  return [high, low];
}
