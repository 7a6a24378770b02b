/// <reference lib="dom" />
/** Errors explained kindly: what happened, what to do, and a countdown when the server said when. */
import { ApiError } from "./api.ts";
import { h } from "./dom.ts";
import { formatDuration } from "./format.ts";

const TITLES: Record<string, string> = {
  rate_limited: "Slow down a little",
  quota_exceeded: "Usage limit reached",
  overloaded: "RepoLM is very busy",
  network: "No connection",
  upload_canceled: "Upload canceled",
  too_many_ingests: "Other repositories are still being read",
  github_unavailable: "GitHub can't be reached right now",
  github_rate_limited: "GitHub is limiting requests right now",
  missing_url: "No address yet",
  invalid_url: "That address doesn't look right",
  unsupported_host: "Only GitHub for now",
  repo_not_found: "Repository not found",
  repo_private: "That repository is private",
  repo_too_large: "That repository is too large",
  upload_too_large: "That archive is too large",
  unsupported_archive: "That file isn't an archive we can read",
  invalid_archive: "That archive couldn't be read",
  not_found: "Not found",
  audio_unavailable: "No audio",
};

const ADVICE: Record<string, string> = {
  invalid_url: "Use an address like https://github.com/owner/repo or just owner/repo.",
  repo_private:
    "RepoLM can only read public repositories. Download it as an archive and upload that instead.",
  repo_too_large: "Try a sub-folder (a …/tree/branch/folder link) or upload a smaller archive.",
  upload_too_large: "Leave out build output and dependencies, or link a GitHub repository instead.",
  network: "",
};

/** What the person did themselves: said calmly, with nothing to retry. */
const NEUTRAL = new Set(["upload_canceled"]);

/** Answers that the same request would get again: a "Try again" button would only repeat them. */
const FINAL = new Set([
  "missing_url",
  "invalid_url",
  "unsupported_host",
  "repo_not_found",
  "repo_private",
  "repo_too_large",
  "upload_too_large",
  "unsupported_archive",
  "invalid_archive",
  "not_found",
  "audio_unavailable",
]);

/** Turns anything thrown into an ApiError with a sentence for a person. */
export function asApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  return new ApiError(
    0,
    "unexpected",
    "Something unexpected went wrong in the page. Reload it and try again.",
  );
}

const countdowns = new WeakMap<HTMLElement, ReturnType<typeof setInterval>>();

/** Clears a notice area (and its countdown). */
export function clearNotice(area: HTMLElement): void {
  clearInterval(countdowns.get(area));
  area.replaceChildren();
}

/**
 * Shows `error` in `area`: a title, the API's own message, advice, and — for 429/503 — a live
 * countdown from Retry-After after which "Try again" is enabled. `retry` adds that button, unless
 * the same request could only get the same answer. The person's own cancel is shown calmly.
 */
export function showError(area: HTMLElement, e: unknown, retry?: () => void): void {
  const error = asApiError(e);
  clearNotice(area);
  const waitable = error.status === 429 || error.status === 503 || error.code === "overloaded";
  const title = TITLES[error.code] ??
    (error.status >= 500
      ? "The server had a problem"
      : error.status === 404
      ? "Not found"
      : "That didn't work");
  // For 429/503 the server says when (Retry-After; for quota_exceeded that is when the quota resets).
  let left = error.retryAfter ?? (waitable ? 5 : 0);
  const counting = waitable && left > 0;
  // The countdown says when; a message that says it too ("Try again in 284 s.") would say it twice.
  const message = counting
    ? error.message.replace(/\s*Try again in \d+ ?s(econds)?\.?$/i, "")
    : error.message;
  const advice = ADVICE[error.code];
  const countdown = h("p", { class: "countdown" });
  const neutral = NEUTRAL.has(error.code);
  const final = neutral || FINAL.has(error.code) || [400, 404, 413, 422].includes(error.status);
  const button = retry && !final
    ? h("button", {
      type: "button",
      class: "retry",
      onclick: () => {
        clearNotice(area);
        retry();
      },
    }, "Try again")
    : null;
  const box = h(
    "div",
    { class: `notice ${neutral ? "info" : waitable ? "warn" : "error"}`, "data-code": error.code },
    h("strong", {}, title),
    h("p", {}, message),
    advice ? h("p", { class: "muted" }, advice) : null,
    countdown,
    button,
  );
  area.append(box);
  if (counting) {
    if (button) button.disabled = true;
    const tick = () => {
      if (left <= 0) {
        clearInterval(countdowns.get(area));
        countdown.textContent = "You can try again now.";
        if (button) button.disabled = false;
        return;
      }
      countdown.textContent = `You can try again in ${formatDuration(left)}.`;
      left--;
    };
    tick();
    countdowns.set(area, setInterval(tick, 1000));
  }
}
