/**
 * The web page in a real browser (Debian's chromium-headless-shell driven by playwright-core), on
 * the app served in-process over HTTP: upload an archive and ingest a GitHub URL with progress,
 * watch the overview stream in, walk every tab, chat and follow a citation to the file and line,
 * ask about selected lines, reload share links, see a 429 explained with a countdown — and a repo
 * whose README and model output carry XSS payloads renders them inert.
 *
 * Screenshots of each tab go to docs/screenshots/ (overwritten on every run).
 * Skips itself when /usr/bin/chromium-headless-shell is missing (`apt-get install -y chromium-headless-shell`).
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import fs from "node:fs";
import type { Browser, BrowserContext, BrowserType, Page } from "playwright-core";
import { buildStatic } from "../scripts/build_static.ts";
import { buildTarGz, type FixtureEntry } from "./fakes/archives.ts";
import { startFakeGitHub } from "./fakes/github.ts";
import { startFakeOpenAI } from "./fakes/openai.ts";
import { startTestApp, type TestApp } from "./helpers.ts";

// Functions passed to page.evaluate run in the browser, where these exist; Deno's types lack them.
// deno-lint-ignore no-explicit-any
declare const document: any, window: any, navigator: any, innerWidth: number, innerHeight: number;

const CHROMIUM = "/usr/bin/chromium-headless-shell";
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];
const SHOTS = new URL("../docs/screenshots/", import.meta.url);
const VIEWPORT = { width: 1366, height: 900 };

const haveChromium = (() => {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
})();
if (!haveChromium) {
  console.warn(
    `browser_test: SKIPPED — ${CHROMIUM} is not installed. ` +
      "Install it with `apt-get update && apt-get install -y chromium-headless-shell` (CI does).",
  );
}

/**
 * playwright-core probes `/proc/sys/fs/binfmt_misc/WSLInterop` with existsSync when it loads; Deno
 * answers reads of /proc/sys with NotCapable unless run with --allow-all. For that probe "no" is
 * the true answer here, so /proc look-ups that are refused read as absent while it is imported.
 */
async function loadChromium(): Promise<BrowserType> {
  const existsSync = fs.existsSync;
  const patched = (path: fs.PathLike) => {
    try {
      return existsSync(path);
    } catch (e) {
      if (String(path).startsWith("/proc/") && (e as Error).name === "NotCapable") return false;
      throw e;
    }
  };
  Object.assign(fs, { existsSync: patched });
  try {
    return (await import("playwright-core")).chromium;
  } finally {
    Object.assign(fs, { existsSync });
  }
}

/** A small repository with enough lines that scrolling to a cited line matters. */
function demoRepo(): FixtureEntry[] {
  const long = Array.from(
    { length: 160 },
    (_, i) => `export const value${i + 1} = ${i + 1}; // filler line ${i + 1}`,
  );
  return [
    {
      path: "README.md",
      content: "# Greeter\n\nA tiny library that greets people by name, with a command line.\n\n" +
        "## Usage\n\n```ts\nimport { greet } from './src/greet.ts';\ngreet('Ada');\n```\n\n" +
        "Run the tests with `deno test`.\n",
    },
    {
      path: "src/greet.ts",
      content: "/** Greets people by name. */\n" +
        "export function greet(name: string): string {\n" +
        "  const trimmed = name.trim();\n" +
        '  if (!trimmed) throw new Error("a name is needed");\n' +
        "  return `Hello, ${trimmed}!`;\n" +
        "}\n\n" +
        "/** Greets everyone in a list. */\n" +
        "export function greetAll(names: string[]): string[] {\n" +
        "  return names.map(greet);\n" +
        "}\n",
    },
    {
      path: "src/main.ts",
      content: 'import { greetAll } from "./greet.ts";\n\nif (import.meta.main) {\n' +
        "  for (const line of greetAll(Deno.args)) console.log(line);\n}\n",
    },
    { path: "src/values.ts", content: long.join("\n") + "\n" },
    {
      path: "tests/greet_test.ts",
      content: 'import { greet } from "../src/greet.ts";\n\nDeno.test("greet says hello", () => {\n' +
        '  if (greet(" Ada ") !== "Hello, Ada!") throw new Error("wrong greeting");\n});\n',
    },
    {
      path: "deno.json",
      content: JSON.stringify({ name: "@demo/greeter", tasks: { test: "deno test" } }, null, 2) + "\n",
    },
    { path: "docs/design.md", content: "# Design\n\nGreeting is pure; the CLI only prints.\n" },
  ];
}

/** README and model output both carry script payloads (the fake model echoes FAKE_REPLY lines). */
const XSS_LINE = `FAKE_REPLY: # Hi <img src=x onerror="window.__xss=1"> <script>window.__xss=1</script> ` +
  `[a link](javascript:window.__xss=1) <a href="javascript:window.__xss=1">b</a> ` +
  `<svg onload="window.__xss=1"><circle r="1"/></svg> <iframe srcdoc="<script>parent.__xss=1</script>"></iframe> ` +
  `<form action="javascript:window.__xss=1"><button>go</button></form> <div style="color:red" onclick="window.__xss=1">x</div> [src/x.ts:1-2]`;

function hostileRepo(): FixtureEntry[] {
  return [
    {
      path: "README.md",
      content: '# Evil <img src=x onerror="window.__xss=1">\n\n' +
        "<script>window.__xss=1</script>\n\n" +
        "[click me](javascript:window.__xss=1)\n\n" +
        '<a href="javascript:window.__xss=1">or me</a>\n\n' +
        `${XSS_LINE}\n`,
    },
    {
      path: "src/x.ts",
      content: "export const x = 1;\nexport const y = '<script>window.__xss=1</script>';\n",
    },
  ];
}

interface Served {
  url: string;
  close(): Promise<void>;
}

/**
 * Serves the test app over HTTP on 127.0.0.1. `csp: "strip"` removes the Content-Security-Policy
 * so the XSS check proves the sanitiser, not the CSP, keeps payloads inert.
 */
function serve(
  app: TestApp,
  options: { csp?: "keep" | "strip"; intercept?: (req: Request) => Response | undefined } = {},
): Served {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req, info) => {
    const url = new URL(req.url);
    const canned = options.intercept?.(req);
    if (canned) return canned;
    const res = await app.fetch(url.pathname + url.search, {
      method: req.method,
      headers: req.headers,
      body: req.body,
      signal: req.signal,
      // @ts-ignore: Deno's RequestInit accepts duplex for streamed bodies
      duplex: "half",
    }, info.remoteAddr.hostname);
    if (options.csp !== "strip") return res;
    const headers = new Headers(res.headers);
    headers.delete("content-security-policy");
    return new Response(res.body, { status: res.status, statusText: res.statusText, headers });
  });
  return { url: `http://127.0.0.1:${server.addr.port}`, close: () => server.shutdown() };
}

/**
 * A canned artifact whose stream drops after deltas 1–3; the reconnect (which must carry
 * Last-Event-ID: 3) gets 2–3 again — overlap, as a resuming server may send — then 4–5 and done.
 * The page must show each delta once.
 */
function resumingStream() {
  const id = "resume-test-artifact";
  const state = {
    id,
    repoId: "",
    lastEventIds: [] as (string | null)[],
    intercept(req: Request): Response | undefined {
      const path = new URL(req.url).pathname;
      if (path === `/api/artifacts/${id}`) {
        return Response.json({
          id,
          repoId: state.repoId,
          kind: "overview",
          options: { expertise: "intermediate" },
          status: "generating",
          model: "fake",
          offline: false,
          usage: { inputTokens: 0, outputTokens: 0 },
          createdAt: new Date().toISOString(),
        });
      }
      if (path !== `/api/artifacts/${id}/stream`) return undefined;
      const last = req.headers.get("last-event-id");
      state.lastEventIds.push(last);
      const frame = (seq: number) =>
        `id: ${seq}\nevent: delta\ndata: ${JSON.stringify({ text: `<${seq}>` })}\n\n`;
      const body = last === null
        ? `retry: 50\n\n${frame(1)}${frame(2)}${frame(3)}`
        : `${frame(2)}${frame(3)}${frame(4)}${
          frame(5)
        }id: 6\nevent: done\ndata: {"id":"${id}","status":"done"}\n\n`;
      return new Response(body, {
        headers: { "content-type": "text/event-stream", "cache-control": "no-cache" },
      });
    },
  };
  return state;
}

/** Watches a page for problems: uncaught errors, console errors and CSP violations. */
function watchProblems(page: Page): string[] {
  const problems: string[] = [];
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  page.on("requestfailed", (r) => {
    if (new URL(r.url()).pathname.startsWith("/assets/")) {
      problems.push(`asset failed: ${r.url()} ${r.failure()?.errorText}`);
    }
  });
  page.on("response", (r) => {
    if (new URL(r.url()).pathname.startsWith("/assets/") && r.status() >= 400) {
      problems.push(`asset ${r.status()}: ${r.url()}`);
    }
  });
  page.on("console", (m) => {
    const text = m.text();
    // Chrome logs every 4xx/5xx response ("Failed to load resource"); the page handles those itself.
    if (
      m.type() === "error" && !/^Failed to load resource: the server responded with a status of/.test(text)
    ) {
      problems.push(`console: ${text}`);
    }
    if (/Content Security Policy/i.test(text)) problems.push(`csp: ${text}`);
  });
  return problems;
}

/** Records every <script> element the document ever gets, and marks when the XSS payload could run. */
const RECORD_SCRIPTS = `
  window.__scriptsSeen = [];
  const seen = new WeakSet();
  new MutationObserver((records) => {
    for (const r of records) for (const n of r.addedNodes) {
      if (n.nodeType !== 1) continue;
      const found = n.tagName === "SCRIPT" ? [n] : [...n.querySelectorAll("script")];
      for (const s of found) {
        if (seen.has(s)) continue;
        seen.add(s);
        window.__scriptsSeen.push(s.outerHTML.slice(0, 200));
      }
    }
  }).observe(document, { childList: true, subtree: true });
`;

async function shot(page: Page, name: string): Promise<void> {
  await page.evaluate(() => document.fonts?.ready);
  await page.screenshot({ path: new URL(`${name}.png`, SHOTS).pathname });
}

async function openTab(page: Page, kind: string): Promise<void> {
  await page.click(`#tab-${kind}`);
  await page.waitForSelector(`#panel-${kind}:not([hidden])`);
}

async function waitArtifact(page: Page, kind: string, timeout = 20_000): Promise<string> {
  await page.waitForSelector(`#panel-${kind}[data-status="done"], #panel-${kind}[data-status="error"]`, {
    timeout,
  });
  const status = await page.getAttribute(`#panel-${kind}`, "data-status");
  const notice = status === "error" ? await page.textContent(`#panel-${kind} .artifact-status`) : "";
  assert.equal(status, "done", `the ${kind} should be generated, got: ${notice}`);
  return (await page.getAttribute(`#panel-${kind}`, "data-artifact-id"))!;
}

/** The rows of the file view that are selected, as [first, last]. */
async function selectedRows(page: Page): Promise<[number, number] | null> {
  return await page.evaluate(() => {
    const rows = [...document.querySelectorAll("#file-body tr.selected")];
    if (!rows.length) return null;
    return [Number(rows[0].dataset.line), Number(rows[rows.length - 1].dataset.line)] as [number, number];
  });
}

/** True when the row of `line` is inside the visible part of the file view. */
async function rowVisible(page: Page, line: number): Promise<boolean> {
  return await page.evaluate((n) => {
    const row = document.getElementById(`L${n}`);
    const box = document.getElementById("file-body");
    if (!row || !box) return false;
    const r = row.getBoundingClientRect();
    const b = box.getBoundingClientRect();
    return r.top >= b.top - 1 && r.bottom <= b.bottom + 1 && r.bottom <= innerHeight && r.top >= 0;
  }, line);
}

Deno.test({
  name: "web page works end to end in a real browser and renders hostile text inert",
  ignore: !haveChromium,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await buildStatic({ quiet: true });
    await Deno.mkdir(SHOTS, { recursive: true });
    const github = await startFakeGitHub();
    github.addRepo({ owner: "acme", name: "greeter", archive: demoRepo(), delayMs: 40, chunkBytes: 512 });
    const app = await startTestApp({
      env: { GITHUB_API_URL: github.apiUrl, GITHUB_CODELOAD_URL: github.codeloadUrl },
    });
    const stream = resumingStream();
    const served = serve(app, { intercept: stream.intercept });
    let browser: Browser | undefined;
    let context: BrowserContext | undefined;
    try {
      browser = await (await loadChromium()).launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
      context = await browser.newContext({ viewport: VIEWPORT, acceptDownloads: true });
      await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: served.url });
      const page = await context.newPage();
      const problems = watchProblems(page);
      const archive = await buildTarGz(demoRepo());
      let repoId = "";
      let overviewId = "";

      await t.step("the start page loads its hashed, compressed, cached assets under the CSP", async () => {
        const res = await page.goto(served.url + "/");
        assert.equal(res?.status(), 200);
        assert.equal(res?.headers()["cache-control"], "no-cache");
        assert.match(res?.headers()["content-security-policy"] ?? "", /script-src 'self'/);
        const js = await page.getAttribute("script[type=module]", "src");
        assert.match(js!, /^\/assets\/app\.[0-9a-f]{12}\.js$/);
        const asset = await fetch(served.url + js, { headers: { "accept-encoding": "br, gzip" } });
        await asset.body?.cancel();
        assert.equal(asset.headers.get("cache-control"), "public, max-age=31536000, immutable");
        assert.equal(asset.headers.get("content-encoding"), "br");
        await page.waitForSelector("html[data-routed]");
        // the test app has no model configured: the start page says so (from /health's llm provider)
        await page.locator("#start-offline").waitFor();
        assert.match(await page.innerText("#start-offline"), /Offline mode/);
        await shot(page, "start");
      });

      await t.step("an unknown address shows the page saying Not found, not JSON", async () => {
        const res = await page.goto(served.url + "/r/no%20such%20repository");
        assert.equal(res?.status(), 404);
        await page.locator("#alert .notice[data-code=not_found]").waitFor();
        assert.equal(new URL(page.url()).pathname, "/");
        assert.equal(await page.isVisible("#url-form"), true);
      });

      await t.step("an empty address is explained before anything is sent", async () => {
        const sent: string[] = [];
        const record = (r: { url(): string }) => sent.push(r.url());
        page.on("request", record);
        await page.fill("#url-input", "  ");
        await page.click("#url-submit");
        const notice = page.locator("#alert .notice");
        await notice.waitFor();
        page.off("request", record);
        assert.match(await notice.innerText(), /Paste a GitHub URL/);
        assert.deepEqual(sent, []);
        assert.equal(await page.evaluate(() => document.activeElement?.id), "url-input");
      });

      await t.step("a 429 is explained with a countdown from Retry-After", async () => {
        await page.route("**/api/repos", (route) =>
          route.fulfill({
            status: 429,
            headers: { "content-type": "application/json", "retry-after": "7" },
            body: JSON.stringify({
              error: {
                code: "rate_limited",
                message: "Too many ingest requests: the limit is 5 per 3600 s. Try again in 7 s.",
              },
            }),
          }));
        try {
          await page.fill("#url-input", "acme/greeter");
          await page.click("#url-submit");
          const notice = page.locator("#alert .notice");
          await notice.waitFor();
          const text = await notice.innerText();
          assert.match(text, /Too many ingest requests: the limit is 5 per 3600 s\./);
          assert.match(text, /try again in [67] s/);
          assert.equal(text.match(/try again in/gi)?.length, 1, `the wait is said once: ${text}`);
          assert.equal(await page.isDisabled("#alert .notice button.retry"), true);
          // the progress card looks stopped: the step is marked failed and the bar no longer animates
          assert.equal(await page.locator("#phase-list li.current").count(), 0);
          assert.equal(await page.locator("#phase-list li.failed").count(), 1);
          assert.notEqual(await page.getAttribute("#progress-bar", "value"), null, "bar still indeterminate");
        } finally {
          await page.unroute("**/api/repos");
        }
      });

      await t.step("a too large upload offers no retry; a canceled one is no error", async () => {
        await page.route("**/api/repos/upload", (route) =>
          route.fulfill({
            status: 413,
            headers: { "content-type": "application/json" },
            body: JSON.stringify({
              error: { code: "upload_too_large", message: "Uploads are limited to 50 MB." },
            }),
          }));
        try {
          const file = { name: "big.tar.gz", mimeType: "application/gzip", buffer: Buffer.from(archive) };
          await page.setInputFiles("#file-input", file);
          const tooLarge = page.locator("#alert .notice[data-code=upload_too_large]");
          await tooLarge.waitFor();
          assert.match(await tooLarge.innerText(), /That archive is too large/);
          assert.equal(await page.locator("#alert .notice button.retry").count(), 0);
          await page.unroute("**/api/repos/upload");
          await page.route("**/api/repos/upload", () => {}); // never answered: the upload stays in flight
          await page.setInputFiles("#file-input", file);
          await page.click("#cancel-upload");
          const canceled = page.locator("#alert .notice.info");
          await canceled.waitFor();
          assert.match(await canceled.innerText(), /Upload canceled/);
          assert.equal(await page.isHidden("#progress"), true);
        } finally {
          await page.unroute("**/api/repos/upload");
        }
      });

      await t.step("a GitHub URL ingests with progress by phase from the job's event stream", async () => {
        await page.goto(served.url + "/");
        await page.fill("#url-input", "https://github.com/acme/greeter");
        await page.click("#url-submit");
        await page.waitForSelector("#phase-list li[data-phase=downloading]", { timeout: 10_000 });
        await page.waitForSelector("#repo:not([hidden])", { timeout: 20_000 });
        assert.match(page.url(), /\/(r|a)\/[A-Za-z0-9_-]+$/);
        assert.equal(await page.textContent("#repo-title"), "acme/greeter");
        const phases = await page.$$eval(
          "#phase-list li",
          (lis) => lis.map((li) => li.getAttribute("data-phase")),
        );
        assert.ok(phases.includes("downloading") && phases.at(-1) === "done", `phases seen: ${phases}`);
      });

      await t.step("an archive uploads through the page with progress and opens the repository", async () => {
        await page.goto(served.url + "/");
        await page.setInputFiles("#file-input", {
          name: "greeter.tar.gz",
          mimeType: "application/gzip",
          buffer: Buffer.from(archive),
        });
        await page.waitForSelector("#repo:not([hidden])", { timeout: 20_000 });
        const phases = await page.$$eval(
          "#phase-list li",
          (lis) => lis.map((li) => li.getAttribute("data-phase")),
        );
        assert.deepEqual(phases.slice(0, 1), ["uploading"]);
        assert.ok(phases.includes("done"), `phases seen: ${phases}`);
        repoId = (await page.getAttribute("#repo", "data-repo-id"))!;
        assert.ok(repoId);
        assert.equal(await page.textContent("#repo-title"), "greeter");
        const stats = await page.textContent("#repo-stats");
        assert.match(stats!, /Files7/);
        await page.waitForSelector("#tree button.file[data-path='README.md']");
      });

      await t.step("the overview streams in over EventSource and renders Markdown", async () => {
        overviewId = await waitArtifact(page, "overview");
        const streamed = await page.evaluate(() =>
          performance.getEntriesByType("resource").some((e) => /\/api\/artifacts\/[^/]+\/stream/.test(e.name))
        );
        const text = await page.innerText("#panel-overview .artifact-body");
        assert.ok(text.length > 100, "the overview has text");
        assert.ok(
          await page.locator("#panel-overview .artifact-body h1, #panel-overview .artifact-body h2").count() >
            0,
        );
        assert.ok(streamed || (await page.getAttribute("#panel-overview", "data-status")) === "done");
        assert.equal(await page.isVisible("#offline-banner"), true, "offline mode is stated");
        assert.match(page.url(), new RegExp(`/a/${overviewId}$`));
        await shot(page, "overview");
      });

      await t.step("tabs are a keyboard-operable tablist", async () => {
        await page.focus("#tab-overview");
        await page.keyboard.press("ArrowRight");
        assert.equal(await page.getAttribute("#tab-slides", "aria-selected"), "true");
        assert.equal(await page.evaluate(() => document.activeElement?.id), "tab-slides");
        assert.equal(await page.isHidden("#panel-overview"), true);
      });

      await t.step("slides: arrow keys move between slides, export downloads Markdown", async () => {
        await waitArtifact(page, "slides");
        const first = await page.textContent("#slide-counter");
        assert.match(first!, /^1 \/ \d+$/);
        await page.click("#slide");
        await page.keyboard.press("ArrowRight");
        assert.match((await page.textContent("#slide-counter"))!, /^2 \/ /);
        await page.keyboard.press("ArrowLeft");
        await page.keyboard.press("ArrowRight");
        await page.evaluate(() => document.activeElement?.blur()); // no focus ring in the picture
        await shot(page, "slides");
        const [download] = await Promise.all([page.waitForEvent("download"), page.click("#slides-export")]);
        assert.equal(download.suggestedFilename(), "greeter-slides.md");
        const path = await download.path();
        const md = await Deno.readTextFile(path!);
        assert.match(md, /\n---\n/);
      });

      await t.step("podcast: the script with two hosts, read aloud without recorded audio", async () => {
        const logged: string[] = [];
        const record = (m: { type(): string; text(): string }) => {
          if (m.type() === "error") logged.push(m.text());
        };
        page.on("console", record);
        await openTab(page, "podcast");
        await waitArtifact(page, "podcast");
        const speakers = await page.$$eval(
          "#podcast-script .speaker",
          (els) => [...new Set(els.map((e) => e.textContent))],
        );
        assert.deepEqual(speakers.sort(), ["Alex", "Sam"]);
        await page.waitForSelector("#podcast-player button.primary");
        assert.equal(
          await page.locator("#podcast-player audio").count(),
          0,
          "no TTS configured: no audio element",
        );
        page.off("console", record);
        // not even "Failed to load resource": the artifact says it has no audio, so none is asked for
        assert.deepEqual(logged, [], "no console errors on the podcast view");
        await shot(page, "podcast");
      });

      await t.step("concepts: a concept is explained", async () => {
        await openTab(page, "concepts");
        await page.fill("#concept-input", "how names are greeted");
        await page.press("#concept-input", "Enter");
        await waitArtifact(page, "concepts");
        assert.ok((await page.innerText("#panel-concepts .artifact-body")).length > 40);
        await shot(page, "concepts");
      });

      await t.step("the skip link jumps to the content without reloading the page", async () => {
        await openTab(page, "chat");
        await page.fill("#chat-input", "a question still being written");
        // location.reload() fires a "reload" navigate event at once, so this sees it however slow the reload is
        await page.evaluate(() => {
          window.__navigations = [];
          window.navigation.addEventListener("navigate", (e: { navigationType: string }) => {
            window.__navigations.push(e.navigationType);
          });
        });
        await page.focus(".skip-link");
        await page.keyboard.press("Enter");
        // the jump is done, or the page was replaced (a reload drops the hash as it re-routes)
        await page.waitForFunction(() => location.hash === "#main" || !window.__navigations);
        assert.deepEqual(await page.evaluate(() => window.__navigations), ["push"], "no reload");
        assert.equal(await page.evaluate(() => document.activeElement?.id), "main");
        assert.equal(await page.inputValue("#chat-input"), "a question still being written");
      });

      await t.step("chat: a streamed answer whose citation opens the file at the cited lines", async () => {
        await openTab(page, "chat");
        await page.fill("#chat-input", "Where is greet defined and what does it do with an empty name?");
        await page.press("#chat-input", "Enter");
        await page.waitForSelector("#chat-log li.assistant[data-status=done]", { timeout: 20_000 });
        const cite = page.locator("#chat-log li.assistant .answer a.cite").first();
        await cite.waitFor();
        const path = (await cite.getAttribute("data-path"))!;
        const start = Number(await cite.getAttribute("data-start"));
        const end = Number(await cite.getAttribute("data-end"));
        assert.ok(start >= 1 && end >= start, `citation ${path}:${start}-${end}`);
        await cite.click();
        await page.waitForSelector("#file-panel:not([hidden]) #file-body table");
        assert.equal(await page.textContent("#file-title"), path);
        assert.deepEqual(await selectedRows(page), [start, end]);
        assert.ok(await rowVisible(page, start), "the cited line is scrolled into view");
        await shot(page, "chat");
      });

      await t.step("a new question and the start of its answer show above the sticky chat form", async () => {
        await page.fill("#chat-input", "What does greetAll return?");
        await page.press("#chat-input", "Enter");
        await page.waitForSelector("#chat-log li.user:nth-of-type(3)"); // the second question (li 3 of 4)
        const boxes = await page.evaluate(() => {
          const box = (el: { getBoundingClientRect(): DOMRectReadOnly }) => el.getBoundingClientRect();
          return {
            question: box(document.querySelectorAll("#chat-log li.user")[1]),
            answer: box(document.querySelectorAll("#chat-log li.assistant")[1]),
            form: box(document.getElementById("chat-form")),
          };
        });
        assert.ok(boxes.question.top >= 0, `question top ${boxes.question.top}`);
        assert.ok(
          boxes.question.bottom <= boxes.form.top && boxes.answer.top + 24 <= boxes.form.top,
          `question ends at ${boxes.question.bottom}, answer starts at ${boxes.answer.top}, form at ${boxes.form.top}`,
        );
        await page.waitForSelector("#chat-log li.assistant:nth-of-type(4)[data-status=done]", {
          timeout: 20_000,
        });
      });

      await t.step("the open file, its lines and the Chat tab stay in the address and a reload", async () => {
        const path = (await page.textContent("#file-title"))!;
        const [start, end] = (await selectedRows(page))!;
        const inAddress = (url: string) => {
          const q = new URL(url).searchParams;
          return q.get("file") === path && q.get("lines") === `${start}-${end}`;
        };
        assert.ok(inAddress(page.url()), `the address ${page.url()} names ${path}:${start}-${end}`);
        await page.click("#share-link");
        assert.ok(
          inAddress(await page.evaluate(() => navigator.clipboard.readText())),
          "the share link too",
        );
        await page.reload();
        await page.waitForSelector("#file-panel:not([hidden]) #file-body tr.selected");
        assert.equal(await page.textContent("#file-title"), path);
        assert.deepEqual(await selectedRows(page), [start, end]);
        assert.equal(await page.getAttribute("#tab-chat", "aria-selected"), "true");
        assert.equal(await page.isHidden("#expertise"), true, "Level does nothing on the Chat tab");
        await page.click("#file-close");
        await page.waitForFunction(() => !new URLSearchParams(location.search).has("file"));
        // opened from the address, so there is no citation to go back to: focus goes to the content
        assert.equal(await page.evaluate(() => document.activeElement?.id), "main");
      });

      await t.step("a deep citation scrolls and selecting lines asks about them", async () => {
        await page.goto(`${served.url}/r/${repoId}?file=src/values.ts&lines=140-142`);
        await page.waitForSelector("#file-body tr#L140.selected");
        assert.ok(await rowVisible(page, 140), "line 140 is scrolled into view");
        await page.click("#file-body tr#L120 td.ln");
        await page.click("#file-body tr#L123 td.ln", { modifiers: ["Shift"] });
        assert.deepEqual(await selectedRows(page), [120, 123]);
        const sent = page.waitForRequest((r) => r.url().endsWith("/chat") && r.method() === "POST");
        await page.click("#ask-lines");
        assert.equal(await page.getAttribute("#tab-chat", "aria-selected"), "true");
        assert.match(await page.innerText("#chat-selection"), /src\/values\.ts, lines 120–123/);
        await page.fill("#chat-input", "What do these lines define?");
        await page.press("#chat-input", "Enter");
        const body = JSON.parse((await sent).postData()!);
        assert.deepEqual(body.selection, { path: "src/values.ts", startLine: 120, endLine: 123 });
        await page.waitForSelector("#chat-log li.assistant[data-status=done]", { timeout: 20_000 });
        await shot(page, "file");
      });

      await t.step("share links: /a/:id reopens the same overview, a reload keeps it", async () => {
        const before = await fetch(`${served.url}/api/artifacts/${overviewId}`).then((r) => r.json());
        await page.goto(`${served.url}/a/${overviewId}`);
        await waitArtifact(page, "overview");
        assert.equal(await page.getAttribute("#tab-overview", "aria-selected"), "true");
        const shown = await page.innerText("#panel-overview .artifact-body");
        assert.ok(
          shown.includes(
            before.content.split("\n").find((l: string) => /\w{4}/.test(l) && !l.startsWith("#"))
              .replace(/[*_`\[\]]/g, "").slice(0, 20).trim(),
          ),
        );
        await page.reload();
        await waitArtifact(page, "overview");
        assert.equal(await page.innerText("#panel-overview .artifact-body"), shown);
      });

      await t.step("a dropped artifact stream resumes with Last-Event-ID and repeats nothing", async () => {
        stream.repoId = repoId;
        await page.goto(`${served.url}/a/${stream.id}`);
        await page.waitForSelector("#panel-overview[data-status=done]", { timeout: 10_000 });
        assert.equal((await page.innerText("#panel-overview .artifact-body")).trim(), "<1><2><3><4><5>");
        assert.deepEqual(stream.lastEventIds, [null, "3"]);
      });

      await t.step("changing the level asks for that level's overview", async () => {
        await page.goto(`${served.url}/r/${repoId}`);
        await waitArtifact(page, "overview");
        const intermediate = await page.getAttribute("#panel-overview", "data-artifact-id");
        const asked = page.waitForRequest((r) => r.url().endsWith("/artifacts") && r.method() === "POST");
        await page.selectOption("#expertise", "expert");
        assert.deepEqual(JSON.parse((await asked).postData()!), { kind: "overview", expertise: "expert" });
        await page.waitForFunction(
          (before) => {
            const panel = document.querySelector("#panel-overview");
            return panel?.dataset.status === "done" && panel.dataset.artifactId !== before;
          },
          intermediate,
        );
      });

      await t.step("copy digest puts the digest on the clipboard", async () => {
        await page.click("#copy-digest");
        await page.waitForFunction(() =>
          document.getElementById("toast")?.textContent?.startsWith("Digest copied")
        );
        const clip = await page.evaluate(() => navigator.clipboard.readText());
        assert.match(clip, /README\.md/);
        assert.match(clip, /src\/greet\.ts/);
      });

      await t.step("phone width: one column, nothing wider than the screen", async () => {
        await page.setViewportSize({ width: 390, height: 844 });
        await page.goto(`${served.url}/a/${overviewId}`);
        await waitArtifact(page, "overview");
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - innerWidth);
        assert.ok(overflow <= 0, `page is ${overflow}px wider than the phone`);
        await shot(page, "phone");
        await page.setViewportSize(VIEWPORT);
      });

      assert.deepEqual(problems, [], "no page errors, console errors or CSP violations");
    } finally {
      await context?.close();
      await browser?.close();
      await served.close();
      await app.close();
      await github.close();
    }
  },
});

Deno.test({
  name: "web page renders README and model output carrying script payloads inert",
  ignore: !haveChromium,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await buildStatic({ quiet: true });
    const fake = await startFakeOpenAI({ tokens: 20 });
    const app = await startTestApp({
      env: {
        OPENAI_API_KEY: "test-key",
        OPENAI_BASE_URL: fake.baseUrl,
        LLM_MODEL: "fake-model",
        TTS_MODEL: "tts-1",
      },
    });
    const served = serve(app, { csp: "strip" });
    let browser: Browser | undefined;
    try {
      browser = await (await loadChromium()).launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
      const page = await browser.newPage({ viewport: VIEWPORT });
      await page.addInitScript(RECORD_SCRIPTS);
      const problems: string[] = [];
      page.on("pageerror", (e) => problems.push(e.message));
      const archive = await buildTarGz(hostileRepo());

      await page.goto(served.url + "/");
      assert.equal(
        await page.evaluate(() => fetch("/").then((r) => r.headers.get("content-security-policy"))),
        null,
        "this scenario runs without CSP, so only sanitising keeps the payloads inert",
      );
      await page.setInputFiles("#file-input", {
        name: "evil.tar.gz",
        mimeType: "application/gzip",
        buffer: Buffer.from(archive),
      });
      await page.waitForSelector("#repo:not([hidden])", { timeout: 20_000 });

      await t.step("model output in the overview", async () => {
        await waitArtifact(page, "overview");
        const text = await page.innerText("#panel-overview .artifact-body");
        assert.match(text, /Hi/, text);
        const html = await page.innerHTML("#panel-overview .artifact-body");
        assert.equal(await page.locator("#panel-overview a.cite[data-path='src/x.ts']").count(), 1, html);
      });

      await t.step("model output in a chat answer", async () => {
        await openTab(page, "chat");
        await page.fill("#chat-input", XSS_LINE);
        await page.press("#chat-input", "Enter");
        await page.waitForSelector("#chat-log li.assistant[data-status=done]", { timeout: 20_000 });
        assert.match(await page.innerText("#chat-log li.assistant .answer"), /Hi/);
      });

      await t.step("with speech configured the podcast gets an audio player", async () => {
        await openTab(page, "podcast");
        await waitArtifact(page, "podcast");
        const audio = page.locator("#podcast-player audio");
        // speech is made after the script, turn by turn: allow for a slow, busy machine
        await audio.waitFor({ state: "attached", timeout: 45_000 });
        assert.match((await audio.getAttribute("src"))!, /^\/api\/artifacts\/[^/]+\/audio$/);
        assert.ok(fake.calls.speech >= 1);
      });

      await t.step("the README shown as a file", async () => {
        await page.click("#tree button.file[data-path='README.md']");
        await page.waitForSelector("#file-body table");
        assert.match(await page.innerText("#file-body"), /<script>window.__xss=1<\/script>/);
      });

      await t.step("nothing ran and nothing executable was added", async () => {
        await page.waitForTimeout(300); // give any onerror/onload a chance to fire
        const result = await page.evaluate(() => {
          const w = window as { __xss?: unknown; __scriptsSeen: string[] };
          const handlers = [...document.querySelectorAll("*")].flatMap((el) =>
            [...el.attributes].filter((a) => /^on/i.test(a.name)).map((a) => `${el.tagName} ${a.name}`)
          );
          const jsLinks = [...document.querySelectorAll("[href], [action], [src], [srcdoc]")]
            .filter((el) =>
              /^\s*javascript:/i.test(
                el.getAttribute("href") ?? el.getAttribute("action") ?? el.getAttribute("src") ?? "",
              ) ||
              el.hasAttribute("srcdoc")
            )
            .map((el) => el.outerHTML.slice(0, 120));
          return {
            xss: w.__xss,
            scripts: [...document.scripts].map((s) => s.getAttribute("src")),
            scriptsSeen: w.__scriptsSeen,
            handlers,
            jsLinks,
            styled: document.querySelectorAll("main [style]").length,
            embedded:
              document.querySelectorAll(".markdown :is(iframe, object, embed, form, img, style)").length,
          };
        });
        assert.equal(result.xss, undefined, "window.__xss was never set");
        assert.equal(result.scripts.length, 1);
        assert.match(result.scripts[0] ?? "", /^\/assets\/app\.[0-9a-f]{12}\.js$/);
        assert.equal(result.scriptsSeen.length, 1, `scripts added: ${result.scriptsSeen.join(" | ")}`);
        assert.deepEqual(result.handlers, []);
        assert.deepEqual(result.jsLinks, []);
        assert.equal(result.styled, 0);
        assert.equal(result.embedded, 0);
        assert.deepEqual(problems, []);
      });
      assert.ok(fake.calls.chat >= 2, "the model was really called (overview and chat)");
    } finally {
      await browser?.close();
      await served.close();
      await app.close();
      await fake.close();
    }
  },
});
