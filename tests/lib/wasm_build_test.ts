import assert from "node:assert/strict";
import { compileWasm, MODULES, wasmFile } from "../../scripts/build_wasm.ts";

for (const module of MODULES) {
  Deno.test(`${module}.wasm is what \`deno task build:wasm\` makes of its source`, async () => {
    assert.deepEqual(await compileWasm(module), await Deno.readFile(wasmFile(module)));
  });
}
