/**
 * Turns RepoFacts and retrieved passages into each artifact's text without a model. Every sentence
 * is built from a fact that was found; a missing fact is said plainly, never guessed.
 */
import type { Command, CommandPurpose, RepoFacts } from "./offline_facts.ts";
import { fence } from "./offline_markdown.ts";
import { type Expertise, type Passage, PODCAST_HOSTS, SLIDE_SEPARATOR } from "./types.ts";

/** How much of each list an audience gets: beginners a short tour, experts the long one. */
const LIMITS = {
  beginner: { keyFiles: 5, deps: 6, folders: 6, commands: 5, entries: 3, excerpt: 12, passages: 3 },
  intermediate: { keyFiles: 8, deps: 10, folders: 10, commands: 8, entries: 6, excerpt: 18, passages: 5 },
  expert: { keyFiles: 12, deps: 20, folders: 14, commands: 14, entries: 10, excerpt: 30, passages: 8 },
};

const PURPOSE_LABEL: Record<CommandPurpose, string> = {
  install: "Install",
  build: "Build",
  test: "Test",
  run: "Run",
  lint: "Check",
  other: "Other",
};

/** Inline code that survives backticks inside it. */
function code(text: string): string {
  return text.includes("`") ? `\`\` ${text} \`\`` : `\`${text}\``;
}

/** Escapes `<` outside code spans, so prose from a README never turns into HTML. */
function prose(text: string): string {
  return text.split(/(`[^`]*`)/).map((part, i) => (i % 2 ? part : part.replace(/</g, "&lt;"))).join("");
}

function plural(n: number, word: string): string {
  return `${n.toLocaleString("en-US")} ${word}${n === 1 ? "" : "s"}`;
}

function tokens(n: number): string {
  if (n >= 1_000_000) return `${(n / 1_000_000).toFixed(1)}M`;
  return n >= 10_000 ? `${Math.round(n / 1000)}k` : n >= 1000 ? `${(n / 1000).toFixed(1)}k` : String(n);
}

/** "a, b, c and 7 more". */
function some(items: string[], max: number): string {
  return items.length > max
    ? `${items.slice(0, max).join(", ")} and ${items.length - max} more`
    : listing(items);
}

/** "a, b and c". */
function listing(items: string[]): string {
  return items.length <= 1
    ? items.join("")
    : `${items.slice(0, -1).join(", ")} and ${items[items.length - 1]}`;
}

/** The first `n` sentences of a paragraph. */
function sentences(text: string, n: number): string {
  // A stop counts only before a space or the end, so "Node.js" and "v1.2" stay whole.
  const parts = text.match(/(?:[^.!?]|[.!?](?!\s|$))+(?:[.!?]+(?=\s|$)|$)/g) ?? [text];
  return parts.slice(0, n).join("").trim();
}

function ensurePeriod(text: string): string {
  return /[.!?…:]$/.test(text) ? text : `${text}.`;
}

function mainLanguage(f: RepoFacts): string | undefined {
  return f.languages.find((l) => !/^(Markdown|JSON|YAML|Text|TOML)$/.test(l.name))?.name;
}

function commandLine(c: Command): string {
  if (c.about) return `${code(c.command)} — ${prose(c.about)}`;
  const runs = c.runs && c.runs !== c.command && c.runs.length <= 90 ? ` — runs ${code(c.runs)}` : "";
  return `${code(c.command)}${runs}`;
}

/** The commands worth showing: every purpose once before any purpose twice, in the facts' order. */
function pickCommands(f: RepoFacts, max: number): Command[] {
  const firsts = f.commands.filter((c, i) => f.commands.findIndex((x) => x.purpose === c.purpose) === i);
  const rest = f.commands.filter((c) => !firsts.includes(c));
  const chosen = [...firsts, ...rest].slice(0, max);
  return f.commands.filter((c) => chosen.includes(c));
}

function entryLine(e: RepoFacts["entryPoints"][number]): string {
  const where = e.inTree ? code(e.path) : `${code(e.path)} (built output, not in the repository)`;
  const declared = e.declared && e.inTree ? ` — declared as ${code(e.declared)}` : "";
  return `**${e.label}**: ${where}${declared}`;
}

/** A Markdown overview: purpose, languages, layout, entry points, commands, key files, dependencies. */
export function writeOverview(f: RepoFacts, expertise: Expertise): string {
  const lim = LIMITS[expertise];
  const out: string[] = [`# ${f.name}`, "## What it is"];
  if (f.description) out.push(`**${prose(ensurePeriod(f.description))}**`);
  const about = f.purpose.slice(0, expertise === "beginner" ? 1 : 3).map(prose);
  out.push(...about);
  if (!about.length && !f.description) {
    out.push(
      "The repository has no README introduction or manifest description, so this overview is built from its files alone.",
    );
  }
  const lang = mainLanguage(f);
  out.push(
    `It holds ${plural(f.totals.files, "file")} (about ${tokens(f.totals.tokens)} tokens of text)${
      lang ? `; its main programming language is ${lang}` : ""
    }.`,
  );
  const release = [f.version ? `Version ${code(f.version)}` : "", f.license ? `license: ${f.license}` : ""]
    .filter(Boolean).join("; ");
  if (release) out.push(`${release[0].toUpperCase()}${release.slice(1)}.`);
  const said = [
    f.description ? f.manifests.find((m) => m.description === f.description)?.path : undefined,
    about.length ? f.readmePath : undefined,
  ].filter((p): p is string => Boolean(p));
  if (said.length && expertise !== "beginner") out.push(`(From ${listing(said.map(code))}.)`);

  if (f.languages.length) {
    out.push("## Languages");
    if (expertise === "beginner") out.push("Shares are by size of the files in each language.");
    out.push(f.languages.slice(0, 8).map((l) => `- ${l.name}: ${l.percent}%`).join("\n"));
  }

  out.push("## Layout");
  if (f.folders.length) {
    const rows = f.folders.slice(0, lim.folders).map((d) =>
      `| ${code(`${d.path}/`)} | ${d.files} | ${d.role} |`
    );
    out.push(["| Folder | Files | What it likely holds |", "| --- | --- | --- |", ...rows].join("\n"));
    if (f.folders.length > lim.folders) {
      out.push(`…and ${plural(f.folders.length - lim.folders, "more folder")}.`);
    }
  } else out.push("All files sit at the top level; there are no folders.");
  if (f.rootFiles.length) {
    const shown = f.rootFiles.slice(0, 12).map(code);
    const more = f.rootFiles.length > 12 ? ` and ${f.rootFiles.length - 12} more` : "";
    out.push(`At the top level: ${shown.join(", ")}${more}.`);
  }

  out.push("## Entry points");
  if (expertise === "beginner") {
    out.push(
      "An entry point is the file a program or library starts from — the best place to begin reading.",
    );
  }
  if (f.entryPoints.length) {
    out.push(f.entryPoints.slice(0, lim.entries).map((e) => `- ${entryLine(e)}`).join("\n"));
  } else {
    out.push(
      "No manifest names an entry point and no file has a conventional entry name (main, index, app…).",
    );
  }

  out.push("## Build, test and run");
  if (expertise === "beginner") {
    out.push(
      "Run these from the repository's top folder. Install fetches the libraries it needs; test runs its checks.",
    );
  }
  // Beginners get the commands that get it working; chores such as `clean` are for the others.
  const commands = pickCommands(f, lim.commands).filter((c) =>
    expertise !== "beginner" || ["install", "build", "test", "run"].includes(c.purpose)
  );
  if (commands.length) {
    out.push(commands.map((c) => `- ${PURPOSE_LABEL[c.purpose]}: ${commandLine(c)}`).join("\n"));
    const sources = [...new Set(commands.map((c) => c.source).filter((s) => s !== "convention"))];
    if (sources.length) out.push(`From ${listing(sources.map(code))}.`);
  } else out.push("No manifest or Makefile declares commands, so there is nothing to quote here.");
  for (const section of f.howTo.slice(0, expertise === "beginner" ? 1 : 2)) {
    out.push(`### From the README: ${section.title}`, section.markdown);
  }

  out.push("## Key files");
  if (f.keyFiles.length) {
    out.push(
      f.keyFiles.slice(0, lim.keyFiles).map((k) =>
        `- ${code(k.path)} — ${
          k.summary ? prose(ensurePeriod(k.summary)) : `${k.language}, ${tokens(k.tokens)} tokens.`
        }`
      ).join("\n"),
    );
  } else out.push("Beyond the README and manifests there are no files to point at.");

  out.push("## Dependencies");
  if (expertise === "beginner") {
    out.push("Dependencies are other people's libraries that this project builds on.");
  }
  const runtime = f.dependencies.filter((d) => !d.dev);
  const dev = f.dependencies.filter((d) => d.dev);
  if (!f.manifests.length) out.push("No package manifest was found, so dependencies are unknown.");
  else if (!f.dependencies.length) {
    out.push(
      `No dependencies: ${listing(f.manifests.map((m) => code(m.path)))} ${
        f.manifests.length > 1 ? "list" : "lists"
      } none.`,
    );
  } else {
    if (runtime.length) {
      const shown = runtime.slice(0, lim.deps).map((d) =>
        `- ${code(d.name)}${d.version ? ` ${d.version}` : ""}`
      );
      if (runtime.length > lim.deps) shown.push(`- …and ${runtime.length - lim.deps} more`);
      out.push("Runtime:", shown.join("\n"));
    } else out.push("No runtime dependencies.");
    if (dev.length) {
      out.push(
        `For development, ${plural(dev.length, "package")}: ${some(dev.map((d) => code(d.name)), lim.deps)}.`,
      );
    }
  }

  if (expertise === "expert") {
    out.push("## Internals");
    if (f.largest.length) {
      out.push("Largest source files by tokens:");
      out.push(
        [
          "| File | Tokens | Note |",
          "| --- | --- | --- |",
          ...f.largest.map((l) =>
            `| ${code(l.path)} | ${tokens(l.tokens)} | ${
              prose(l.summary ?? l.language).replace(/\|/g, "\\|")
            } |`
          ),
        ].join("\n"),
      );
    }
    if (f.symbols.length) {
      out.push("Exported or public names in the most important files:");
      out.push(
        f.symbols.slice(0, 10).map((s) => `- ${code(s.path)}: ${some(s.names.map(code), 12)}`).join("\n"),
      );
    }
    if (!f.largest.length && !f.symbols.length) out.push("No source files were available to look inside.");
  }
  return out.join("\n\n") + "\n";
}

/** Markdown slides, 6 to 10, each starting with `# Title`, separated by SLIDE_SEPARATOR. */
export function writeSlides(f: RepoFacts, expertise: Expertise): string {
  const lim = LIMITS[expertise];
  const slides: string[] = [];
  const bullets = (items: string[]) => items.map((i) => `- ${i}`).join("\n");
  const lang = mainLanguage(f);

  slides.push(
    [
      `# ${f.name}`,
      f.description
        ? prose(ensurePeriod(f.description))
        : f.purpose[0]
        ? prose(sentences(f.purpose[0], 1))
        : "",
      `${lang ? `A ${lang} project` : "A project"} of ${plural(f.totals.files, "file")}.`,
    ].filter(Boolean).join("\n\n"),
  );

  const about = f.purpose.slice(0, 3).map((p) => prose(sentences(p, 2)));
  slides.push(
    `# What it does\n\n${
      about.length
        ? bullets(about)
        : f.description
        ? prose(ensurePeriod(f.description))
        : "The README does not describe it."
    }`,
  );

  slides.push(`# Languages and size\n\n${
    bullets([
      ...f.languages.slice(0, 5).map((l) => `${l.name}: ${l.percent}%`),
      `${plural(f.totals.files, "file")}, about ${tokens(f.totals.tokens)} tokens`,
    ])
  }`);

  slides.push(
    `# How it's organised\n\n${
      f.folders.length
        ? bullets(
          f.folders.slice(0, 6).map((d) => `${code(`${d.path}/`)}, ${plural(d.files, "file")}: ${d.role}`),
        )
        : "Everything sits in the top folder."
    }`,
  );

  slides.push(
    `# Where it starts\n\n${
      f.entryPoints.length
        ? bullets(f.entryPoints.slice(0, Math.min(5, lim.entries)).map(entryLine))
        : "No declared or conventional entry point."
    }${
      expertise === "beginner" ? "\n\nAn entry point is the first file that runs — start reading there." : ""
    }`,
  );

  const commands = pickCommands(f, 6);
  slides.push(
    `# Build, test and run\n\n${
      commands.length
        ? bullets(commands.map((c) => `${PURPOSE_LABEL[c.purpose]}: ${code(c.command)}`))
        : "No commands are declared in a manifest or Makefile."
    }`,
  );

  slides.push(
    `# Key files\n\n${
      f.keyFiles.length
        ? bullets(
          f.keyFiles.slice(0, 5).map((k) => `${code(k.path)}${k.summary ? ` — ${prose(k.summary)}` : ""}`),
        )
        : "Only the README and manifests."
    }`,
  );

  const runtime = f.dependencies.filter((d) => !d.dev);
  if (f.dependencies.length) {
    const dev = f.dependencies.length - runtime.length;
    slides.push(`# Dependencies\n\n${
      bullets([
        runtime.length
          ? `Runtime: ${runtime.slice(0, 8).map((d) => code(d.name)).join(", ")}`
          : "No runtime dependencies",
        ...(dev ? [`Development: ${plural(dev, "package")}`] : []),
      ])
    }`);
  }

  if (expertise === "expert" && (f.largest.length || f.symbols.length)) {
    slides.push(`# Under the hood\n\n${
      bullets([
        ...f.largest.slice(0, 3).map((l) => `${code(l.path)}: ${tokens(l.tokens)} tokens`),
        ...f.symbols.slice(0, 3).map((s) =>
          `${code(s.path)} exports ${s.names.slice(0, 5).map(code).join(", ")}`
        ),
      ])
    }`);
  } else if (expertise === "beginner") {
    slides.push(`# Words to know\n\n${
      bullets([
        "**Manifest**: the file that names the project, its commands and its dependencies",
        "**Entry point**: the file a program starts from",
        "**Dependency**: someone else's library this project uses",
        "**Tests**: code that checks the project still works",
      ])
    }`);
  }

  const entry = f.entryPoints.find((e) => e.inTree)?.path;
  const test = commands.find((c) => c.purpose === "test")?.command;
  const next = f.keyFiles.find((k) => k.path !== entry && k.summaryFrom === "doc") ??
    f.keyFiles.find((k) => k.path !== entry);
  const start = [
    f.readmePath ? `Read ${code(f.readmePath)}` : undefined,
    entry ? `Open ${code(entry)}` : undefined,
    next ? `Skim ${code(next.path)}` : undefined,
    test ? `Run ${code(test)}` : undefined,
  ].filter((s): s is string => Boolean(s));
  slides.push(
    `# Where to start\n\n${
      start.length ? start.map((s, i) => `${i + 1}. ${s}`).join("\n") : "Browse the file tree from the top."
    }`,
  );

  return slides.slice(0, 10).join(`\n${SLIDE_SEPARATOR}\n`) + "\n";
}

/** Text fit to be spoken: no Markdown marks, links or code fences, on one line. */
function speakable(text: string): string {
  return text.replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1")
    .replace(/https?:\/\/(?:www\.)?([^/\s]+)\S*/g, "$1")
    .replace(/`|\*\*?/g, "")
    .replace(/(^|\s)__([^_\s][^_]*)__(?=[.,;:!?]?(\s|$))/g, "$1$2")
    .replace(/(^|\s)_([^_\s][^_]*)_(?=[\s.,;:!?]|$)/g, "$1$2")
    .replace(/^\s*(#+|>)\s*/, "")
    .replace(/\s+/g, " ").trim();
}

/** Names the way a person says them: "a", "a and b", "a, b and c". */
function say(items: string[]): string {
  return listing(items.map(speakable));
}

/** A two-host script, one `Host: line` per turn, alternating, 16 to 30 turns. */
export function writePodcast(f: RepoFacts, expertise: Expertise): string {
  const turns: string[] = [];
  const pair = (question: string, answer: string) => turns.push(question, answer);
  const name = speakable(f.name);
  const lang = mainLanguage(f);
  const description = f.description ? speakable(ensurePeriod(f.description)) : undefined;

  pair(
    `Welcome to RepoLM, where we read code so you don't have to. I'm ${PODCAST_HOSTS[0]}, and today ${
      PODCAST_HOSTS[1]
    } and I are looking at ${name}.`,
    description
      ? `Hi ${PODCAST_HOSTS[0]}. Its manifest sums it up in one line: ${description}`
      : `Hi ${
        PODCAST_HOSTS[0]
      }. It doesn't describe itself in a manifest, so we'll piece it together from the files.`,
  );

  const intro = f.purpose[0] ? sentences(speakable(f.purpose[0]), 2) : undefined;
  pair(
    "So what's the idea behind it? What does the README say?",
    intro
      ? `The README opens like this: ${ensurePeriod(intro)}`
      : "There isn't much of a README introduction, honestly, so the code will have to speak for itself.",
  );
  if (f.purpose[1] && expertise !== "beginner") {
    pair("Anything else it wants you to know up front?", ensurePeriod(sentences(speakable(f.purpose[1]), 2)));
  }

  const langs = f.languages.filter((l) => l.percent >= 5).slice(0, 3);
  pair(
    "What's it written in, and how big is it?",
    langs.length
      ? `${lang ? `The main language is ${lang}. ` : ""}By size it's ${
        say(langs.map((l) => `${l.name} at about ${Math.round(l.percent)} percent`))
      }, across ${plural(f.totals.files, "file")}.`
      : `It's ${plural(f.totals.files, "file")} in all.`,
  );

  const folders = f.folders.slice(0, 3);
  pair(
    "How is it organised? If I open the project, what do I see?",
    folders.length
      ? `The biggest folder is ${folders[0].path}, with ${plural(folders[0].files, "file")}, which holds ${
        speakable(folders[0].role.replace(/ \(.*\)$/, ""))
      }.${
        folders.length > 1
          ? ` Then there's ${
            say(folders.slice(1).map((d) => `${d.path} for ${d.role.replace(/ \(.*\)$/, "")}`))
          }.`
          : ""
      }`
      : "Everything sits at the top level, no folders at all, so it's quick to look around.",
  );

  const entries = f.entryPoints.filter((e) => e.inTree).slice(0, 2);
  pair(
    "Where does it all start? Which file should I read first?",
    entries.length
      ? `The ${speakable(entries[0].label)} is ${entries[0].path}.${
        entries[1] ? ` There's also the ${speakable(entries[1].label)} in ${entries[1].path}.` : ""
      }`
      : `Nothing is declared as an entry point, so I'd start with ${
        f.readmePath ? "the README and " : ""
      }the biggest folder.`,
  );
  if (expertise === "beginner") {
    pair(
      "Quick jargon check for newcomers: what do we mean by entry point?",
      "It's simply the first file that runs, or the one a library hands to its users. Everything else hangs off it.",
    );
  }

  const commands = pickCommands(f, 8);
  const install = commands.find((c) => c.purpose === "install");
  const VERB: Partial<Record<CommandPurpose, string>> = {
    build: "builds it",
    test: "runs the tests",
    run: "starts it",
  };
  const others = commands.filter((c) => VERB[c.purpose]);
  const steps = ["build", "test", "run"].flatMap((p) => others.find((c) => c.purpose === p) ?? []);
  pair(
    "How do I get it running on my machine?",
    install || steps.length
      ? `${install ? `First ${install.command} to fetch what it needs. ` : ""}${
        steps.length
          ? `${install ? "Then" : "Simple:"} ${say(steps.map((c) => `${c.command} ${VERB[c.purpose]}`))}.`
          : ""
      }`.trim()
      : "The project doesn't declare any build or test commands, so you'd follow its documentation.",
  );
  const howTo = f.howTo.find((h) => /install|start/i.test(h.title)) ?? f.howTo[0];
  if (howTo) {
    const shell = howTo.markdown.match(
      /^`{3,}(?:sh|bash|shell|console|zsh)?\n(?:\$\s*)?((?:npm|npx|yarn|pnpm|bun|deno|pip|pipx|uv|poetry|cargo|go|gem|bundle|composer|brew|make|git|docker)\b[^\n]*)/m,
    )?.[1];
    const firstProse = howTo.markdown.split("\n\n").find((b) => !/^(`{3,}|[-|>*_\d])/.test(b));
    const said = [
      firstProse ? ensurePeriod(sentences(speakable(firstProse), 1).replace(/:$/, "")) : "",
      shell ? `The command it gives is ${speakable(shell)}.` : "",
    ].filter(Boolean).join(" ");
    pair(
      `Does the README walk you through it?`,
      said
        ? `${/^[aeiou]/i.test(howTo.title) ? "It has an" : "It has a"} ${
          speakable(howTo.title).toLowerCase()
        } section. ${said}`
        : `Yes, in its ${speakable(howTo.title).toLowerCase()} section, with examples you can copy.`,
    );
  }

  const documented = f.keyFiles.filter((k) => k.summaryFrom === "doc");
  const files = (documented.length ? documented : f.keyFiles).slice(0, 2);
  const fileLine = (k: RepoFacts["keyFiles"][number]) =>
    !k.summary
      ? `It's ${k.language}, about ${tokens(k.tokens)} tokens.`
      : k.summaryFrom === "doc"
      ? `Its opening comment says: ${ensurePeriod(speakable(k.summary))}`
      : ensurePeriod(speakable(k.summary)).replace(/^Re-exports/, "It re-exports").replace(
        /^Defines/,
        "It defines",
      );
  if (files[0]) {
    pair("Let's pick a notable file or two. What stands out?", `${files[0].path}. ${fileLine(files[0])}`);
  }
  if (files[1]) pair("And another one?", `${files[1].path}. ${fileLine(files[1])}`);

  const runtime = f.dependencies.filter((d) => !d.dev);
  const dev = f.dependencies.filter((d) => d.dev);
  pair(
    "What does it lean on? Lots of dependencies?",
    !f.manifests.length
      ? "There's no package manifest, so I can't tell you from the files."
      : runtime.length
      ? `At runtime it uses ${say(runtime.slice(0, 4).map((d) => d.name))}${
        runtime.length > 4 ? `, plus ${runtime.length - 4} more` : ""
      }.${dev.length ? ` For development it adds ${plural(dev.length, "more package")}.` : ""}`
      : `No runtime dependencies at all${
        dev.length ? `, just ${plural(dev.length, "development package")}` : ""
      }.`,
  );

  if (expertise === "expert" && (f.largest[0] || f.symbols[0])) {
    const big = f.largest[0];
    const sym = f.symbols[0];
    pair(
      "For the experts listening: where's the weight of the code?",
      `${big ? `The largest source file is ${big.path} at about ${tokens(big.tokens)} tokens.` : ""}${
        sym ? ` And ${sym.path} exports ${say(sym.names.slice(0, 4))}.` : ""
      }`.trim(),
    );
  }

  const test = commands.find((c) => c.purpose === "test");
  pair(
    "If someone wants to dive in today, what's your advice?",
    `${f.readmePath ? "Read the README" : "Browse the files from the top"}${
      entries[0] ? `, then open ${entries[0].path}` : ""
    }${test ? `, and run ${test.command} to watch it work` : ""}. That gets you a long way.`,
  );
  while (turns.length < 14) {
    pair(
      "Anything we missed?",
      "Only the details. The files are small enough to browse, so have a look around.",
    );
  }
  pair(
    `Great. Thanks, ${PODCAST_HOSTS[1]}. That was ${name}${lang ? `, a ${lang} project` : ""}.`,
    `Thanks, ${PODCAST_HOSTS[0]}. Happy reading, everyone.`,
  );
  // Keep the closing pair when trimming to the 30-turn limit.
  const script = turns.length > 30 ? [...turns.slice(0, 28), ...turns.slice(-2)] : turns;
  return script.map((line, i) => `${PODCAST_HOSTS[i % 2]}: ${speakable(line)}`).join("\n") + "\n";
}

const STOP_WORDS = new Set(
  "the and for with how does what where when which why who this that these those from into are was were is it its can you your our use used using about there their have has had not but any all do did get make work works file code show find"
    .split(" "),
);

/** Rough stems of the meaningful words in a question or concept ("validation" → "valid"). */
function searchTerms(text: string): string[] {
  const words = text.toLowerCase().match(/[a-z0-9_]+/g) ?? [];
  const stems = words.filter((w) => w.length >= 3 && !STOP_WORDS.has(w))
    .map((w) => w.replace(/(ations?|ing|ers?|ed|ion|ions|es|s)$/, "")).filter((w) => w.length >= 3);
  return [...new Set(stems)];
}

function fenceLang(path: string): string {
  const ext = path.match(/\.([a-z0-9]+)$/i)?.[1]?.toLowerCase() ?? "";
  const alias: Record<string, string> = {
    mjs: "js",
    cjs: "js",
    mts: "ts",
    cts: "ts",
    h: "c",
    hpp: "cpp",
    yml: "yaml",
  };
  return alias[ext] ?? ext;
}

const DEFINITION =
  /^\s*(?:export\s+)?(?:default\s+)?(?:pub(?:\([^)]*\))?\s+)?(?:async\s+)?(?:function\*?|class|interface|type|enum|def|fn|func|struct|trait|const|let|module)\s+(?:\([^)]*\)\s*)?([A-Za-z_$][\w$]*)/m;

/** The span of a passage to show: up to `max` lines around the line that best matches the terms. */
function excerpt(
  p: Passage,
  terms: string[],
  max: number,
): { startLine: number; endLine: number; text: string } {
  const lines = p.text.split("\n");
  // A definition that mentions a term says more than a line that only uses it.
  const matches = (l: string) => {
    const found = terms.filter((t) => l.toLowerCase().includes(t)).length;
    return found && DEFINITION.test(l) ? found + 0.5 : found;
  };
  let best = -1;
  lines.forEach((l, i) => {
    if (matches(l) > (best === -1 ? 0 : matches(lines[best]))) best = i;
  });
  // The best line sits a third of the way down, with its lead-up above it.
  let end = Math.min(lines.length, Math.max(0, best - Math.floor(max / 3)) + max);
  let start = Math.max(0, end - max);
  while (start < end - 1 && !lines[start].trim()) start++;
  while (end > start + 1 && !lines[end - 1].trim()) end--;
  return {
    startLine: p.startLine + start,
    endLine: p.startLine + end - 1,
    text: lines.slice(start, end).join("\n"),
  };
}

/** The definition an excerpt is about: one named after a term first, else the first function, class or type. */
function definedIn(text: string, terms: string[]): string | undefined {
  const found = [...text.matchAll(new RegExp(DEFINITION.source, "gm"))].map((m) => ({
    name: m[1],
    weak: /^\s*(?:export\s+)?(?:const|let)\s/.test(m[0]),
  }));
  // Most terms matched wins; among equals, the one matching the concept's earliest word.
  const score = (name: string) => {
    const matched = terms.map((t, i) => (name.toLowerCase().includes(t) ? i : -1)).filter((i) => i >= 0);
    return matched.length ? matched.length * terms.length - matched[0] : 0;
  };
  const best = found.reduce<(typeof found)[number] | undefined>(
    (top, d) => (score(d.name) > (top ? score(top.name) : 0) ? d : top),
    undefined,
  );
  return (best ?? found.find((d) => !d.weak))?.name;
}

function cite(path: string, startLine: number, endLine: number): string {
  return `[${path}:${startLine}-${endLine}]`;
}

/**
 * Passages that mention the terms, overlapping ones dropped. Those naming the concept as one
 * identifier or phrase (`errorMap`, "error map") come first, then those with every term; when
 * any such exist, passages with only some of the terms are dropped. Otherwise retrieval's order.
 */
function relevant(passages: Passage[], terms: string[]): Passage[] {
  const phrase = new RegExp(terms.join("[\\s_-]?"), "i");
  const tier = (p: Passage) => {
    const text = `${p.path}\n${p.text}`.toLowerCase();
    if (!terms.length) return 0;
    if (terms.length > 1 && phrase.test(text)) return 0;
    const found = terms.filter((t) => text.includes(t)).length;
    return found === terms.length ? 1 : found ? 2 : 3;
  };
  const tiers = passages.map((p) => ({ p, tier: tier(p) }));
  const cutoff = tiers.some((t) => t.tier < 2) ? 1 : 2;
  const out: Passage[] = [];
  for (const { p } of tiers.filter((t) => t.tier <= cutoff).sort((a, b) => a.tier - b.tier)) {
    const overlaps = (o: Passage) =>
      o.path === p.path && o.startLine <= p.endLine && p.startLine <= o.endLine;
    // Build output often repeats a file verbatim (`x.d.ts` and `x.d.cts`); once is enough.
    if (out.some((o) => overlaps(o) || o.text === p.text)) continue;
    out.push(p);
  }
  return out;
}

/** An explanation of a concept from the passages that mention it, each excerpt cited. */
export function writeConcept(
  concept: string,
  passages: Passage[],
  f: RepoFacts,
  expertise: Expertise,
): string {
  const lim = LIMITS[expertise];
  const terms = searchTerms(concept);
  const hits = relevant(passages, terms).slice(0, lim.passages);
  const out = [`# ${concept.trim() || "Concept"}`];
  if (!hits.length) {
    out.push(
      `Nothing relevant to “${concept.trim()}” was found in ${f.name}: ${
        passages.length ? "none of the retrieved passages mention it" : "the search returned no passages"
      }. Try another word for it, or the name of a function, type or file from the code.`,
    );
    return out.join("\n\n") + "\n";
  }
  const files = [...new Set(hits.map((h) => h.path))];
  out.push(
    `Where “${concept.trim()}” appears in ${f.name}: ${plural(hits.length, "excerpt")} from ${
      listing(files.map(code))
    }, most relevant first. This is offline mode, so the code speaks for itself; each excerpt is cited.`,
  );
  // Names that spell the concept out (`getErrorMap` for "error map") point at where it is defined.
  const named = f.symbols.flatMap((s) =>
    s.names.filter((n) => terms.every((t) => n.toLowerCase().includes(t))).map((n) =>
      `${code(n)} in ${code(s.path)}`
    )
  );
  if (named.length) out.push(`Names in the code that match: ${some(named, 8)}.`);
  if (expertise === "beginner") {
    out.push(
      "Read each excerpt from the top. The citation after it names the file and the lines it comes from.",
    );
  }
  for (const p of hits) {
    const shown = excerpt(p, terms, lim.excerpt);
    const defined = definedIn(shown.text, terms);
    const mentions = terms.length
      ? shown.text.split("\n").filter((l) => terms.some((t) => l.toLowerCase().includes(t))).length
      : 0;
    const isDoc = /\.(md|mdx|rst|txt)$/i.test(p.path);
    const lead = isDoc
      ? `The documentation in ${code(p.path)} says:`
      : `${defined ? `${code(p.path)} defines ${code(defined)}` : `In ${code(p.path)}`}${
        mentions ? `, with ${plural(mentions, "line")} mentioning it here` : ""
      }:`;
    out.push(
      `## ${code(p.path)}, lines ${shown.startLine}–${shown.endLine}`,
      lead,
      fence(shown.text, fenceLang(p.path)),
      cite(p.path, shown.startLine, shown.endLine),
    );
  }
  return out.join("\n\n") + "\n";
}

/** The one-line notice every offline chat answer starts with. */
export const OFFLINE_CHAT_NOTE =
  "_Offline mode: no language model is configured, so this answer is the code most relevant to your question, not a written explanation._";

/** A chat answer without a model: the selection, then the passages most relevant to the question, each cited. */
export function writeChatAnswer(question: string, passages: Passage[], selection?: Passage): string {
  const terms = searchTerms(question);
  const out = [OFFLINE_CHAT_NOTE];
  if (selection) {
    const shown = excerpt(selection, terms, 30);
    out.push(
      `**Your selection** ${cite(selection.path, shown.startLine, shown.endLine)}`,
      fence(shown.text, fenceLang(selection.path)),
    );
  }
  const others = relevant(passages, []).filter((p) =>
    !selection || p.path !== selection.path || p.endLine < selection.startLine ||
    p.startLine > selection.endLine
  ).slice(0, 5);
  if (!others.length && !selection) {
    out.push(
      "Nothing in the indexed files matched the question. Try naming a file, a function or an error message.",
    );
  }
  others.forEach((p, i) => {
    const shown = excerpt(p, terms, 14);
    const defined = definedIn(shown.text, terms);
    out.push(
      `**${i + 1}.** ${cite(p.path, shown.startLine, shown.endLine)}${
        defined ? ` — defines ${code(defined)}` : ""
      }`,
      fence(shown.text, fenceLang(p.path)),
    );
  });
  return out.join("\n\n") + "\n";
}
