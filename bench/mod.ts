/**
 * `deno task bench <name> [flags]`: runs bench/<name>.ts, whose `main(args)` gets the flags.
 * Each benchmark documents its own flags; `deno task bench` alone lists them.
 */

const NAME = /^[a-z][a-z0-9_]*$/;

/** The benchmarks beside this file (every .ts except this dispatcher and helpers without `main`). */
async function available(): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(new URL(".", import.meta.url))) {
    if (e.isFile && e.name.endsWith(".ts") && e.name !== "mod.ts") names.push(e.name.slice(0, -3));
  }
  return names.sort();
}

async function run(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  const names = await available();
  if (!name || !NAME.test(name) || !names.includes(name)) {
    console.error(`usage: deno task bench <name> [flags]\n  benchmarks: ${names.join(", ")}`);
    return 2;
  }
  const mod = await import(`./${name}.ts`) as { main?: (args: string[]) => Promise<void> };
  if (typeof mod.main !== "function") {
    console.error(`bench/${name}.ts has no exported main(args)`);
    return 2;
  }
  await mod.main(rest);
  return 0;
}

if (import.meta.main) Deno.exit(await run(Deno.args));
