/// <reference lib="dom" />
/**
 * Overview, slides, podcast and concepts: ask for an artifact (POST /api/repos/:id/artifacts), then
 * stream its text (GET /api/artifacts/:id/stream) and re-render the sanitised Markdown as it grows.
 * Artifacts are shared: the same kind and options give the same id, so a share link /a/:id shows
 * exactly this text to anyone.
 */
import {
  ApiError,
  type Artifact,
  type ArtifactKind,
  type Expertise,
  getJson,
  type Job,
  postJson,
} from "./api.ts";
import { byId, download, find, h, toast } from "./dom.ts";
import { citationLink } from "./file_view.ts";
import { formatCount, formatDuration } from "./format.ts";
import { frameRenderer, linkCitations, renderMarkdown } from "./markdown.ts";
import { clearNotice, showError } from "./notices.ts";
import { canSpeak, PodcastSpeaker, type Turn } from "./speech.ts";
import { ResumableStream } from "./sse.ts";
import { repoSlug, state } from "./state.ts";

type Status = "requesting" | "queued" | "streaming" | "done" | "error";

interface Entry {
  kind: ArtifactKind;
  expertise: Expertise;
  concept?: string;
  status: Status;
  artifact?: Artifact;
  job?: Job;
  text: string;
  error?: unknown;
  stream?: ResumableStream;
  slide: number;
  audio?: "checking" | "pending" | "yes" | "no";
  speaker?: PodcastSpeaker;
}

const LABEL: Record<ArtifactKind, string> = {
  overview: "overview",
  slides: "slides",
  podcast: "podcast script",
  concepts: "explanation",
};

/** The podcast's two hosts (lib/llm/types.ts PODCAST_HOSTS); their lines read `Alex: …`. */
export const HOSTS = ["Alex", "Sam"];

const entries = new Map<string, Entry>();
const shown: Partial<Record<ArtifactKind, Entry>> = {};
let onChange: () => void = () => {};

function keyOf(kind: ArtifactKind, expertise: Expertise, concept?: string): string {
  return JSON.stringify([state.repo?.id, kind, expertise, concept?.trim().toLowerCase() ?? null]);
}

/** The artifact id a panel shows, for share links. */
export function shownArtifactId(kind: ArtifactKind): string | undefined {
  return shown[kind]?.artifact?.id;
}

/** Runs `listener` whenever the shown artifact of a panel changes (main keeps the address in step). */
export function onArtifactChange(listener: () => void): void {
  onChange = listener;
}

/** Shows the panel of `kind` for the chosen level, asking for the artifact if nobody has yet. */
export function showKind(kind: ArtifactKind): void {
  if (kind === "concepts") {
    const entry = shown.concepts;
    if (entry && entry.expertise !== state.expertise && entry.concept) explainConcept(entry.concept);
    else render("concepts");
    return;
  }
  const key = keyOf(kind, state.expertise);
  const entry = entries.get(key) ?? start(kind, state.expertise);
  entries.set(key, entry);
  bind(entry);
}

/** Asks for an explanation of `concept`. */
export function explainConcept(concept: string): void {
  const key = keyOf("concepts", state.expertise, concept);
  const entry = entries.get(key) ?? start("concepts", state.expertise, concept);
  entries.set(key, entry);
  bind(entry);
}

function bind(entry: Entry): void {
  const before = shown[entry.kind];
  if (before !== entry) before?.speaker?.stop();
  shown[entry.kind] = entry;
  render(entry.kind);
  onChange();
}

function start(kind: ArtifactKind, expertise: Expertise, concept?: string): Entry {
  const entry: Entry = { kind, expertise, concept, status: "requesting", text: "", slide: 0 };
  void requestArtifact(entry);
  return entry;
}

async function requestArtifact(entry: Entry): Promise<void> {
  const repo = state.repo!;
  entry.status = "requesting";
  entry.error = undefined;
  update(entry);
  try {
    const body: Record<string, string> = { kind: entry.kind, expertise: entry.expertise };
    if (entry.concept) body.concept = entry.concept;
    const answer = await postJson<{ artifact: Artifact; job?: Job }>(
      `/api/repos/${encodeURIComponent(repo.id)}/artifacts`,
      body,
    );
    attach(entry, answer.body.artifact, answer.body.job);
  } catch (e) {
    fail(entry, e);
  }
}

/** Opens an artifact by id (a /a/:id share link): returns it so the page can pick the tab and level. */
export async function loadArtifact(id: string): Promise<Artifact> {
  const artifact = await getJson<Artifact>(`/api/artifacts/${encodeURIComponent(id)}`);
  return artifact;
}

/** Registers an artifact fetched by id so that showing its tab displays it. */
export function adoptArtifact(artifact: Artifact): void {
  const expertise = artifact.options?.expertise ?? "intermediate";
  const concept = artifact.options?.concept;
  const entry: Entry = { kind: artifact.kind, expertise, concept, status: "requesting", text: "", slide: 0 };
  entries.set(keyOf(artifact.kind, expertise, concept), entry);
  shown[artifact.kind] = entry;
  attach(entry, artifact);
}

function attach(entry: Entry, artifact: Artifact, job?: Job): void {
  entry.artifact = artifact;
  entry.job = job;
  if (artifact.offline) noteOffline();
  if (artifact.status === "failed") {
    fail(entry, artifact.error ?? { code: "generation_failed", message: "The text could not be generated." });
    return;
  }
  if (artifact.status === "done" && typeof artifact.content === "string") {
    entry.text = artifact.content;
    finish(entry);
    return;
  }
  entry.status = artifact.status === "queued" ? "queued" : "streaming";
  entry.text = "";
  update(entry);
  if (shown[entry.kind] === entry) onChange();
  const stream = new ResumableStream(`/api/artifacts/${encodeURIComponent(artifact.id)}/stream`, {
    onDelta(text) {
      entry.text += text;
      if (entry.status !== "streaming") {
        entry.status = "streaming";
        update(entry);
      } else scheduleBody(entry);
    },
    onDone(data) {
      if (data && typeof data === "object") entry.artifact = { ...entry.artifact!, ...(data as Artifact) };
      if (entry.artifact?.offline) noteOffline();
      finish(entry);
    },
    onError(error) {
      fail(entry, error);
    },
    onConnection(connection) {
      const panel = byId(`panel-${entry.kind}`);
      if (shown[entry.kind] === entry) panel.dataset.connection = connection;
    },
  });
  entry.stream = stream;
  stream.open();
}

function finish(entry: Entry): void {
  entry.status = "done";
  entry.stream = undefined;
  update(entry);
  if (shown[entry.kind] === entry) onChange();
  if (entry.kind === "podcast") void checkAudio(entry);
}

function fail(entry: Entry, e: unknown): void {
  entry.stream?.close();
  entry.stream = undefined;
  entry.status = "error";
  const plain = e as { code?: string; message?: string };
  entry.error = e instanceof Error || typeof plain?.message !== "string"
    ? e
    : new ApiError(0, plain.code ?? "generation_failed", plain.message);
  update(entry);
}

function noteOffline(): void {
  state.offline = true;
  byId("offline-banner").hidden = false;
}

// ---- rendering -------------------------------------------------------------------------------

const bodyRenderers = new Map<ArtifactKind, () => void>();

function scheduleBody(entry: Entry): void {
  if (shown[entry.kind] !== entry) return;
  let r = bodyRenderers.get(entry.kind);
  if (!r) bodyRenderers.set(entry.kind, r = frameRenderer(() => renderBody(entry.kind)));
  r();
}

function update(entry: Entry): void {
  if (shown[entry.kind] !== entry) return;
  render(entry.kind);
}

function render(kind: ArtifactKind): void {
  renderStatus(kind);
  renderBody(kind);
}

function renderStatus(kind: ArtifactKind): void {
  const panel = byId(`panel-${kind}`);
  const area = find(panel, ".artifact-status");
  const entry = shown[kind];
  panel.dataset.status = entry?.status ?? "empty";
  if (entry?.artifact) panel.dataset.artifactId = entry.artifact.id;
  else delete panel.dataset.artifactId;
  clearNotice(area);
  if (!entry) {
    if (kind === "concepts") {
      area.append(
        h(
          "p",
          { class: "muted" },
          "Name a concept, a part of the code or a question of design, and RepoLM explains how this repository handles it.",
        ),
      );
    }
    return;
  }
  const label = LABEL[kind];
  const line = (cls: string, ...children: (Node | string)[]) =>
    area.append(h("p", { class: `status-line ${cls}` }, ...children));
  switch (entry.status) {
    case "requesting":
      line("busy", h("span", { class: "spinner", "aria-hidden": "true" }), `Asking for the ${label}…`);
      break;
    case "queued": {
      const j = entry.job;
      const where = j?.queuePosition ? `: position ${formatCount(j.queuePosition)} in line` : "";
      const eta = j?.etaSeconds !== undefined ? `, starting in about ${formatDuration(j.etaSeconds)}` : "";
      line(
        "busy",
        h("span", { class: "spinner", "aria-hidden": "true" }),
        `Waiting for a writer${where}${eta}…`,
      );
      break;
    }
    case "streaming":
      line(
        "busy",
        h("span", { class: "spinner", "aria-hidden": "true" }),
        `Writing the ${label}… it appears as it is written.`,
      );
      break;
    case "done": {
      const a = entry.artifact;
      const who = a?.offline
        ? h("span", {
          class: "badge offline",
          title: "No language model is configured: this text was assembled from the repository's own files.",
        }, "Offline mode · assembled from the files")
        : h(
          "span",
          { class: "muted" },
          `Written by ${a?.model ?? "the model"}${
            entry.expertise ? ` for ${article(entry.expertise)}` : ""
          }.`,
        );
      const share = h("button", {
        type: "button",
        class: "ghost small",
        onclick: () => copyArtifactLink(a?.id),
      }, "Copy link");
      line("done", who, share);
      break;
    }
    case "error":
      showError(area, entry.error, () => {
        entries.delete(keyOf(entry.kind, entry.expertise, entry.concept));
        if (entry.kind === "concepts" && entry.concept) explainConcept(entry.concept);
        else showKind(entry.kind);
      });
      break;
  }
}

function article(level: Expertise): string {
  return level === "intermediate"
    ? "an intermediate reader"
    : level === "expert"
    ? "an expert"
    : "a beginner";
}

async function copyArtifactLink(id: string | undefined): Promise<void> {
  if (!id) return;
  const url = `${location.origin}/a/${id}`;
  try {
    await navigator.clipboard.writeText(url);
    toast(`Link copied: ${url}`);
  } catch {
    toast(`Share this link: ${url}`);
  }
}

function renderBody(kind: ArtifactKind): void {
  const entry = shown[kind];
  const panel = byId(`panel-${kind}`);
  panel.classList.toggle("streaming", entry?.status === "streaming");
  if (kind === "slides") return renderSlides(entry);
  if (kind === "podcast") return renderPodcast(entry);
  const body = find(panel, ".artifact-body");
  if (!entry?.text) {
    body.replaceChildren();
    return;
  }
  renderMarkdown(body, entry.text);
  linkCitations(body, (p) => state.files.has(p), citationLink);
}

// ---- slides ----------------------------------------------------------------------------------

/** Slides are Markdown separated by a line holding only `---`. */
export function splitSlides(text: string): string[] {
  return text.split(/\r?\n[ \t]*---[ \t]*(?:\r?\n|$)/).map((s) => s.trim()).filter(Boolean);
}

function renderSlides(entry: Entry | undefined): void {
  const slideEl = byId("slide");
  const counter = byId("slide-counter");
  const slides = entry ? splitSlides(entry.text) : [];
  const prev = byId<HTMLButtonElement>("slide-prev");
  const next = byId<HTMLButtonElement>("slide-next");
  const exportButton = byId<HTMLButtonElement>("slides-export");
  if (!entry || !slides.length) {
    slideEl.replaceChildren();
    counter.textContent = "";
    prev.disabled = next.disabled = exportButton.disabled = true;
    return;
  }
  entry.slide = Math.min(entry.slide, slides.length - 1);
  const more = entry.status !== "done";
  renderMarkdown(slideEl, slides[entry.slide]);
  linkCitations(slideEl, (p) => state.files.has(p), citationLink);
  const total = `${slides.length}${more ? "+" : ""}`;
  counter.textContent = `${entry.slide + 1} / ${total}`;
  slideEl.setAttribute("aria-label", `Slide ${entry.slide + 1} of ${total}`);
  prev.disabled = entry.slide === 0;
  next.disabled = entry.slide >= slides.length - 1;
  exportButton.disabled = entry.status !== "done";
}

/** Moves the slide viewer by `delta` slides. */
export function moveSlide(delta: number): void {
  const entry = shown.slides;
  if (!entry) return;
  const count = splitSlides(entry.text).length;
  const to = Math.max(0, Math.min(count - 1, entry.slide + delta));
  if (to === entry.slide) return;
  entry.slide = to;
  renderSlides(entry);
}

/** Jumps to the first or last slide. */
export function slideTo(where: "first" | "last"): void {
  const entry = shown.slides;
  if (!entry) return;
  entry.slide = where === "first" ? 0 : Math.max(0, splitSlides(entry.text).length - 1);
  renderSlides(entry);
}

/** Downloads the slides as one Markdown file. */
export function exportSlides(): void {
  const entry = shown.slides;
  if (!entry || !state.repo) return;
  download(`${repoSlug(state.repo)}-slides.md`, entry.text.endsWith("\n") ? entry.text : `${entry.text}\n`);
}

// ---- podcast ---------------------------------------------------------------------------------

/** Parses `Alex: …` / `Sam: …` lines into turns; other lines continue the previous turn. */
export function parseScript(text: string): Turn[] {
  const turns: Turn[] = [];
  const speakerLine = new RegExp(`^\\s*[*_]{0,2}(${HOSTS.join("|")})[*_]{0,2}\\s*:[*_]{0,2}\\s*(.*)$`, "i");
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line) continue;
    const m = speakerLine.exec(line);
    if (m) {
      const speaker = HOSTS.find((host) => host.toLowerCase() === m[1].toLowerCase())!;
      turns.push({ speaker, text: m[2] });
    } else if (turns.length) turns[turns.length - 1].text += ` ${line}`;
    else turns.push({ speaker: "", text: line });
  }
  return turns;
}

function renderPodcast(entry: Entry | undefined): void {
  const list = byId("podcast-script");
  const turns = entry ? parseScript(entry.text) : [];
  const items = turns.map((turn, i) => {
    const host = HOSTS.indexOf(turn.speaker);
    return h(
      "li",
      { class: `turn ${host === 0 ? "host-a" : host === 1 ? "host-b" : "narration"}`, "data-turn": i },
      turn.speaker ? h("span", { class: "speaker" }, turn.speaker) : null,
      h("p", {}, turn.text.replace(/\*\*|__/g, "")),
    );
  });
  list.replaceChildren(...items);
  renderPlayer(entry, turns);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Looks for recorded audio by the artifact's `audio` field (no request for audio there is none of:
 * a 404 would only fill the console). While it says "generating" the browser's voices are offered
 * meanwhile and the artifact is read again every few seconds (for up to three minutes) to swap in
 * the recording.
 */
async function checkAudio(entry: Entry): Promise<void> {
  if (!entry.artifact || entry.audio) return;
  const id = encodeURIComponent(entry.artifact.id);
  entry.audio = "checking";
  const redraw = () => {
    if (shown.podcast === entry) renderPlayer(entry, parseScript(entry.text));
  };
  let audio = entry.artifact.audio;
  for (let attempt = 0; audio === "generating" && attempt < 60; attempt++) {
    if (entry.audio !== "pending") {
      entry.audio = "pending";
      redraw();
    }
    await sleep(3000);
    audio = (await getJson<Artifact>(`/api/artifacts/${id}`).catch(() => null))?.audio;
  }
  entry.audio = audio === "ready" ? "yes" : "no";
  if (entry.audio === "yes") entry.speaker?.stop();
  redraw();
}

function renderPlayer(entry: Entry | undefined, turns: Turn[]): void {
  const player = byId("podcast-player");
  const key = entry ? `${entry.artifact?.id}|${entry.status}|${entry.audio}` : "";
  if (player.dataset.key === key) return;
  player.dataset.key = key;
  if (!entry || entry.status !== "done") {
    player.replaceChildren();
    return;
  }
  if (entry.audio === "yes") {
    player.replaceChildren(
      h("audio", {
        controls: true,
        preload: "none",
        src: `/api/artifacts/${encodeURIComponent(entry.artifact!.id)}/audio`,
        "aria-label": "Podcast audio",
      }),
    );
    return;
  }
  if (entry.audio === "checking" || entry.audio === undefined) {
    player.replaceChildren(h("p", { class: "muted" }, "Looking for recorded audio…"));
    return;
  }
  if (!canSpeak()) {
    player.replaceChildren(
      h(
        "p",
        { class: "muted" },
        "No recorded audio, and this browser cannot read aloud. The script is below.",
      ),
    );
    return;
  }
  const highlight = (i: number) => {
    for (const li of byId("podcast-script").querySelectorAll(".speaking")) li.classList.remove("speaking");
    const li = byId("podcast-script").querySelector(`[data-turn="${i}"]`);
    li?.classList.add("speaking");
    li?.scrollIntoView({ block: "nearest", behavior: "smooth" });
    if (i < 0) setButtons(false);
  };
  entry.speaker ??= new PodcastSpeaker(turns, HOSTS, highlight);
  entry.speaker.onTurn = highlight; // a redraw brings new buttons; the speaker must drive those
  const play = h("button", { type: "button", class: "primary" }, "Play");
  const stop = h("button", { type: "button", class: "ghost" }, "Stop");
  const setButtons = (playing: boolean) => {
    play.textContent = playing ? "Pause" : "Play";
    play.setAttribute("aria-pressed", String(playing));
  };
  play.addEventListener("click", () => {
    const speaker = entry.speaker!;
    if (speaker.isPlaying) {
      speaker.pause();
      setButtons(false);
    } else {
      setButtons(true);
      void speaker.play();
    }
  });
  stop.addEventListener("click", () => {
    entry.speaker!.stop();
    setButtons(false);
  });
  player.replaceChildren(
    h("div", { class: "row" }, play, stop),
    h(
      "p",
      { class: "muted small" },
      entry.audio === "pending"
        ? "The recording is still being made and will appear here; meanwhile your browser can read it with two voices."
        : "No recorded audio for this podcast; your browser reads it with two voices.",
    ),
  );
}
