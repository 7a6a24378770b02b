/// <reference lib="dom" />
/**
 * RepoLM's page. Reads location.pathname: `/` to start, `/r/:repoId[?tab=chat]` for a repository,
 * `/a/:artifactId` for one overview, deck, podcast or explanation; either with `file=…&lines=a-b`
 * while a file is open. Everything it shows comes through the HTTP API (../shared/API.md).
 */
import type { ArtifactKind, Expertise, Repo } from "./api.ts";
import { ApiError, getJson } from "./api.ts";
import {
  adoptArtifact,
  explainConcept,
  exportSlides,
  loadArtifact,
  moveSlide,
  onArtifactChange,
  showKind,
  shownArtifactId,
  slideTo,
} from "./artifacts.ts";
import { initChat, setSelection } from "./chat.ts";
import { byId } from "./dom.ts";
import { fileParams, initFileView, openFile, parseLines } from "./file_view.ts";
import {
  cancelUpload,
  checkArchive,
  failProgress,
  hideProgress,
  ingestArchive,
  ingestUrl,
  waitForRepo,
} from "./ingest.ts";
import { clearNotice, showError } from "./notices.ts";
import { copyDigest, copyShareLink, showRepo } from "./repo_view.ts";
import { state } from "./state.ts";
import { currentTab, initTabs, isTab, selectTab, type TabKind } from "./tabs.ts";

const alertArea = () => byId("alert");

/** The app address (path and query) the page shows; a history step to another one re-routes. */
let shownAddress = location.pathname + location.search;

function setAddress(path: string, push = false): void {
  shownAddress = path;
  if (location.pathname + location.search === path) return;
  if (push) history.pushState(null, "", path);
  else history.replaceState(null, "", path);
}

/**
 * Keeps the address bar a share link: /a/:id for a shown artifact, /r/:id?tab=… otherwise, with
 * `file=…&lines=a-b` while a file is open.
 */
function syncAddress(): void {
  const repo = state.repo;
  if (!repo) return;
  const tab = currentTab();
  const id = tab !== "chat" ? shownArtifactId(tab) : undefined;
  const query = new URLSearchParams(id || tab === "overview" ? {} : { tab });
  for (const [name, value] of Object.entries(fileParams())) query.set(name, value);
  const path = id ? `/a/${encodeURIComponent(id)}` : `/r/${encodeURIComponent(repo.id)}`;
  const search = query.toString();
  setAddress(search ? `${path}?${search}` : path);
}

async function openRepo(repo: Repo, push: boolean): Promise<void> {
  if (push) setAddress(`/r/${encodeURIComponent(repo.id)}`, true);
  if (repo.status !== "ready") repo = await waitForRepo(repo);
  hideProgress();
  await showRepo(repo);
}

async function withStartForm<T>(work: () => Promise<T>, retry: () => void): Promise<void> {
  const controls = [
    ...document.querySelectorAll<HTMLInputElement | HTMLButtonElement>("#start input, #start button"),
  ]
    .filter((el) => el.id !== "cancel-upload");
  clearNotice(alertArea());
  for (const el of controls) el.disabled = true;
  byId("start").setAttribute("aria-busy", "true");
  try {
    const repo = await work() as Repo;
    await openRepo(repo, true);
    selectTab("overview");
  } catch (e) {
    showError(alertArea(), e, retry);
    if (e instanceof ApiError && e.code === "upload_canceled") hideProgress();
    else failProgress();
  } finally {
    for (const el of controls) el.disabled = false;
    byId("start").removeAttribute("aria-busy");
  }
}

function startWithUrl(url: string): void {
  void withStartForm(() => ingestUrl(url), () => startWithUrl(url));
}

function startWithFile(file: File): void {
  const problem = checkArchive(file);
  if (problem) {
    showError(alertArea(), problem);
    return;
  }
  void withStartForm(() => ingestArchive(file), () => startWithFile(file));
}

function initStart(): void {
  const input = byId<HTMLInputElement>("url-input");
  byId("url-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const url = input.value.trim();
    if (!url) {
      hideProgress();
      showError(
        alertArea(),
        new ApiError(
          0,
          "missing_url",
          "Paste a GitHub URL (https://github.com/owner/repo, or just owner/repo), or drop an archive below.",
        ),
      );
      input.focus();
      return;
    }
    startWithUrl(url);
  });
  const fileInput = byId<HTMLInputElement>("file-input");
  fileInput.addEventListener("change", () => {
    const file = fileInput.files?.[0];
    fileInput.value = "";
    if (file) startWithFile(file);
  });
  const zone = byId("drop-zone");
  const target = byId("start");
  let depth = 0;
  target.addEventListener("dragenter", (e) => {
    if (!e.dataTransfer?.types.includes("Files")) return;
    e.preventDefault();
    depth++;
    zone.classList.add("dragging");
  });
  target.addEventListener("dragover", (e) => {
    if (!e.dataTransfer?.types.includes("Files")) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = "copy";
  });
  target.addEventListener("dragleave", () => {
    if (--depth <= 0) {
      depth = 0;
      zone.classList.remove("dragging");
    }
  });
  target.addEventListener("drop", (e) => {
    e.preventDefault();
    depth = 0;
    zone.classList.remove("dragging");
    const file = e.dataTransfer?.files[0];
    if (file) startWithFile(file);
  });
  byId("cancel-upload").addEventListener("click", cancelUpload);
}

function initRepoView(): void {
  initTabs((kind: TabKind) => {
    if (kind !== "chat") showKind(kind as ArtifactKind);
    byId("expertise-field").hidden = kind === "chat"; // the level shapes generated texts, not chat answers
    syncAddress();
  });
  onArtifactChange(syncAddress);
  const level = byId<HTMLSelectElement>("expertise");
  level.addEventListener("change", () => {
    state.expertise = level.value as Expertise;
    const tab = currentTab();
    if (tab !== "chat") showKind(tab);
  });
  byId("concept-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const concept = byId<HTMLInputElement>("concept-input").value.trim();
    if (concept) explainConcept(concept);
  });
  byId("slide-prev").addEventListener("click", () => moveSlide(-1));
  byId("slide-next").addEventListener("click", () => moveSlide(1));
  byId("slides-export").addEventListener("click", exportSlides);
  document.addEventListener("keydown", (e) => {
    if (currentTab() !== "slides" || byId("repo").hidden || e.altKey || e.ctrlKey || e.metaKey) return;
    const t = e.target as HTMLElement;
    if (t.closest("input, textarea, select, [role=tablist], audio, #file-panel")) return;
    const moves: Record<string, () => void> = {
      ArrowLeft: () => moveSlide(-1),
      ArrowRight: () => moveSlide(1),
      PageUp: () => moveSlide(-1),
      PageDown: () => moveSlide(1),
      Home: () => slideTo("first"),
      End: () => slideTo("last"),
    };
    const move = moves[e.key];
    if (!move) return;
    e.preventDefault();
    move();
  });
  byId("copy-digest").addEventListener("click", copyDigest);
  byId("share-link").addEventListener("click", copyShareLink);
  initFileView((sel) => {
    setSelection(sel);
    selectTab("chat");
    byId("chat-input").focus();
  }, syncAddress);
  initChat();
}

/** On the start page, says so when the server has no language model (GET /health's llm provider). */
async function noteOfflineServer(): Promise<void> {
  const health = await getJson<{ llm?: { provider?: string } }>("/health").catch(() => null);
  byId("start-offline").hidden = health?.llm?.provider !== "offline";
}

async function route(): Promise<void> {
  const path = location.pathname;
  const params = new URLSearchParams(location.search); // read now: showing a tab rewrites the address
  const repoMatch = /^\/r\/([A-Za-z0-9_-]+)\/?$/.exec(path);
  const artifactMatch = /^\/a\/([A-Za-z0-9_-]+)\/?$/.exec(path);
  try {
    if (repoMatch) {
      const repo = await getJson<Repo>(`/api/repos/${encodeURIComponent(repoMatch[1])}`);
      await openRepo(repo, false);
      const tab = params.get("tab");
      selectTab(isTab(tab) ? tab : "overview");
    } else if (artifactMatch) {
      const artifact = await loadArtifact(artifactMatch[1]);
      const repo = await getJson<Repo>(`/api/repos/${encodeURIComponent(artifact.repoId)}`);
      await openRepo(repo, false);
      const expertise = artifact.options?.expertise ?? "intermediate";
      state.expertise = expertise;
      byId<HTMLSelectElement>("expertise").value = expertise;
      if (artifact.options?.concept) byId<HTMLInputElement>("concept-input").value = artifact.options.concept;
      adoptArtifact(artifact);
      selectTab(artifact.kind);
    } else {
      void noteOfflineServer();
      if (path !== "/") {
        setAddress("/");
        const sorry = "Nothing is at that address. Paste a GitHub URL or drop an archive to start.";
        showError(alertArea(), new ApiError(404, "not_found", sorry));
      }
    }
    const file = params.get("file");
    if (file && state.repo) await openFile(file, parseLines(params.get("lines")));
  } catch (e) {
    byId("start").hidden = false;
    byId("repo").hidden = true;
    failProgress();
    showError(alertArea(), e, () => location.reload());
  }
}

function main(): void {
  initStart();
  initRepoView();
  // Back/forward between the start page and a repository: the simplest faithful answer is a fresh load.
  // A step that only changes the #fragment (the skip link, an in-page anchor) is no such step.
  addEventListener("popstate", () => {
    if (location.pathname + location.search !== shownAddress) location.reload();
  });
  document.documentElement.dataset.ready = "true";
  void route().finally(() => document.documentElement.dataset.routed = "true");
}

main();
