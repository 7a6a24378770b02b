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

const utf8 = new TextEncoder();

/**
 * Writes `text` as UTF-8 into a module's memory at `input(bytes)` (which makes room for that many
 * bytes, keeping what is there); returns how many bytes it wrote. It makes room for the text as if
 * ASCII first, then, if it held more, for the rest at 3 bytes a code unit: a module's memory never
 * shrinks, so a megabyte of source should not reserve three.
 */
export function writeUtf8(
  text: string,
  memory: WebAssembly.Memory,
  input: (bytes: number) => number,
): number {
  let at = input(text.length);
  let { read, written } = utf8.encodeInto(text, new Uint8Array(memory.buffer, at, text.length));
  if (read < text.length) {
    const rest = text.length - read;
    at = input(written + rest * 3);
    written +=
      utf8.encodeInto(text.slice(read), new Uint8Array(memory.buffer, at + written, rest * 3)).written;
  }
  return written;
}
