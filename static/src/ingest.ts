/// <reference lib="dom" />
/**
 * Getting a repository in: a GitHub URL (POST /api/repos, then the job's SSE progress) or an
 * archive (XMLHttpRequest, for upload progress). Progress is shown by phase, with the queue
 * position and ETA while waiting.
 */
import { ApiError, errorFromXhr, getJson, type Job, networkError, postJson, type Repo } from "./api.ts";
import { byId, h } from "./dom.ts";
import { formatBytes, formatCount, formatDuration, phaseLabel } from "./format.ts";

const ARCHIVE = /\.(tar\.gz|tgz|tar|zip)$/i;

let lastPhase = "";

/** Shows the progress card with a fresh step list. */
export function resetProgress(title: string): void {
  byId("progress").hidden = false;
  byId("progress").classList.remove("failed");
  byId("progress-title").textContent = title;
  byId("phase-list").replaceChildren();
  byId("progress-text").textContent = "";
  lastPhase = "";
}

/** Hides the progress card. */
export function hideProgress(): void {
  byId("progress").hidden = true;
  byId("cancel-upload").hidden = true;
}

/** Moves to `phase` (adding it to the step list once) and shows how far along it is. */
export function setPhase(phase: string, done = 0, total = 0, detail = ""): void {
  const list = byId("phase-list");
  if (phase !== lastPhase) {
    for (const li of list.querySelectorAll("li.current")) {
      li.classList.replace("current", "complete");
      li.removeAttribute("aria-current");
    }
    list.append(
      h("li", { class: "current", "data-phase": phase, "aria-current": "step" }, phaseLabel(phase)),
    );
    lastPhase = phase;
  }
  const bar = byId<HTMLProgressElement>("progress-bar");
  if (total > 0) bar.value = Math.min(1, done / total);
  else if (phase === "done") bar.value = 1;
  else bar.removeAttribute("value");
  byId("progress-text").textContent = detail;
}

/** Marks every step complete. */
export function finishProgress(text: string): void {
  setPhase("done", 1, 1, text);
  byId("phase-list").querySelector("li.current")?.classList.replace("current", "complete");
}

/** Stops the card where the work failed: that step is marked ✕ and the bar stands still. */
export function failProgress(): void {
  const step = byId("phase-list").querySelector("li.current");
  step?.classList.replace("current", "failed");
  step?.removeAttribute("aria-current");
  const bar = byId<HTMLProgressElement>("progress-bar");
  if (!bar.hasAttribute("value")) bar.value = 0;
  byId("progress").classList.add("failed");
  byId("progress-text").textContent = "Stopped.";
  byId("cancel-upload").hidden = true;
}

function describe(job: Job): { phase: string; done: number; total: number; detail: string } {
  const { phase, done, total } = job.progress;
  if (job.status === "queued") {
    const where = job.queuePosition
      ? `Position ${formatCount(job.queuePosition)} in line`
      : "Waiting in line";
    const eta = job.etaSeconds !== undefined ? ` · starts in about ${formatDuration(job.etaSeconds)}` : "";
    return { phase: "queued", done: 0, total: 0, detail: where + eta };
  }
  let detail = "";
  if (phase === "downloading") {
    detail = total > 0
      ? `${formatBytes(done)} of ${formatBytes(total)}`
      : done > 0
      ? `${formatBytes(done)} so far`
      : "";
  } else if (total > 0) {
    detail = `${formatCount(done)} of ${formatCount(total)}`;
  } else if (done > 0) detail = `${formatCount(done)} so far`;
  if (job.attempts > 1) detail += `${detail ? " · " : ""}attempt ${job.attempts}`;
  return { phase, done, total, detail };
}

/** Shows a job's progress. */
export function showJob(job: Job): void {
  const d = describe(job);
  setPhase(d.phase, d.done, d.total, d.detail);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Follows a job through GET /api/jobs/:id/events until it ends; if the stream cannot be kept open
 * (say a proxy drops it for good) it falls back to polling GET /api/jobs/:id once a second.
 */
export function followJob(jobId: string): Promise<Job> {
  return new Promise((resolve, reject) => {
    const events = new EventSource(`/api/jobs/${encodeURIComponent(jobId)}/events`);
    let settled = false;
    const end = (job: Job) => {
      settled = true;
      events.close();
      if (job.status === "succeeded") resolve(job);
      else {reject(
          new ApiError(0, job.error?.code ?? job.status, job.error?.message ?? `The job ${job.status}.`),
        );}
    };
    events.addEventListener("progress", (e) => showJob(JSON.parse((e as MessageEvent).data)));
    events.addEventListener("done", (e) => end(JSON.parse((e as MessageEvent).data)));
    events.addEventListener("error", (e) => {
      if (settled) return;
      if (e instanceof MessageEvent && e.data) {
        settled = true;
        events.close();
        const d = JSON.parse(e.data);
        reject(new ApiError(0, String(d.code ?? "job_failed"), String(d.message ?? "The job failed.")));
        return;
      }
      if (events.readyState !== EventSource.CLOSED) return; // the browser reconnects by itself
      events.close();
      pollJob(jobId).then(resolve, reject);
    });
  });
}

async function pollJob(jobId: string): Promise<Job> {
  let failures = 0;
  while (true) {
    try {
      const job = await getJson<Job>(`/api/jobs/${encodeURIComponent(jobId)}`);
      failures = 0;
      showJob(job);
      if (job.status === "succeeded") return job;
      if (job.status === "failed" || job.status === "canceled") {
        throw new ApiError(0, job.error?.code ?? job.status, job.error?.message ?? `The job ${job.status}.`);
      }
      await sleep(1000);
    } catch (e) {
      const retriable = e instanceof ApiError &&
        (e.status === 429 || e.status === 503 || e.code === "network");
      if (!retriable || ++failures > 10) throw e;
      await sleep(Math.max(1, e.retryAfter ?? 2 ** failures) * 1000);
    }
  }
}

/** Asks for a GitHub repository and waits until it is ready. */
export async function ingestUrl(url: string): Promise<Repo> {
  resetProgress("Getting the repository");
  setPhase("requesting", 0, 0, url);
  const answer = await postJson<{ repo: Repo; job?: Job }>("/api/repos", { url });
  if (!answer.body.job) {
    finishProgress("Already read — opening it.");
    return answer.body.repo;
  }
  showJob(answer.body.job);
  await followJob(answer.body.job.id);
  const repo = await getJson<Repo>(`/api/repos/${encodeURIComponent(answer.body.repo.id)}`);
  finishProgress(`${formatCount(repo.stats.files)} files read.`);
  return repo;
}

/** A friendly check before sending anything. */
export function checkArchive(file: File): ApiError | null {
  if (ARCHIVE.test(file.name)) return null;
  return new ApiError(
    400,
    "unsupported_archive",
    `${file.name} is not a .tar.gz, .tgz, .tar or .zip archive. Choose one of those, or paste a GitHub address instead.`,
  );
}

let activeUpload: XMLHttpRequest | null = null;

/** Cancels the upload in progress, if any. */
export function cancelUpload(): void {
  activeUpload?.abort();
}

/** Uploads an archive with XMLHttpRequest (fetch cannot report upload progress) and waits until it is ready. */
export async function ingestArchive(file: File): Promise<Repo> {
  resetProgress(`Reading ${file.name}`);
  setPhase("uploading", 0, file.size, `0 B of ${formatBytes(file.size)}`);
  byId("cancel-upload").hidden = false;
  const answer = await new Promise<{ repo: Repo; job?: Job }>((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    activeUpload = xhr;
    xhr.open("POST", "/api/repos/upload");
    xhr.setRequestHeader("accept", "application/json");
    xhr.upload.addEventListener("progress", (e) => {
      const total = e.lengthComputable ? e.total : file.size;
      setPhase("uploading", e.loaded, total, `${formatBytes(e.loaded)} of ${formatBytes(total)}`);
    });
    xhr.upload.addEventListener("load", () => {
      setPhase("processing", 0, 0, "Uploaded. The server is unpacking and indexing the files…");
      byId("cancel-upload").hidden = true;
    });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        try {
          resolve(JSON.parse(xhr.responseText));
        } catch {
          reject(
            new ApiError(xhr.status, "bad_response", "The server's answer could not be read. Try again."),
          );
        }
      } else reject(errorFromXhr(xhr));
    });
    xhr.addEventListener("error", () => reject(networkError()));
    xhr.addEventListener(
      "abort",
      () => reject(new ApiError(0, "upload_canceled", "Choose or drop an archive when you are ready.")),
    );
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  }).finally(() => {
    activeUpload = null;
    byId("cancel-upload").hidden = true;
  });
  if (answer.job) {
    showJob(answer.job);
    await followJob(answer.job.id);
    const repo = await getJson<Repo>(`/api/repos/${encodeURIComponent(answer.repo.id)}`);
    finishProgress(`${formatCount(repo.stats.files)} files read.`);
    return repo;
  }
  finishProgress(`${formatCount(answer.repo.stats.files)} files read.`);
  return answer.repo;
}

/** Waits for a repository someone else is still ingesting (a share link opened early). */
export async function waitForRepo(repo: Repo): Promise<Repo> {
  resetProgress("This repository is still being read");
  let current = repo;
  while (current.status === "ingesting") {
    setPhase("processing", 0, 0, "It will open as soon as it is ready.");
    await sleep(1500);
    current = await getJson<Repo>(`/api/repos/${encodeURIComponent(repo.id)}`);
  }
  if (current.status === "failed") {
    throw new ApiError(
      0,
      current.error?.code ?? "ingest_failed",
      current.error?.message ?? "Reading this repository failed.",
    );
  }
  finishProgress("Ready.");
  return current;
}
