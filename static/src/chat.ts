/// <reference lib="dom" />
/**
 * The chat: POST /api/repos/:id/chat answers as SSE (sources, delta…, done | error), read from
 * the fetch body. Answers are sanitised Markdown whose [path:lines] citations open the file view.
 * Stopping closes the connection, which cancels the model call on the server.
 */
import { ApiError, request, type Source } from "./api.ts";
import { byId, h } from "./dom.ts";
import { citationLink } from "./file_view.ts";
import { frameRenderer, linkCitations, renderMarkdown } from "./markdown.ts";
import { showError } from "./notices.ts";
import { readSse } from "./sse.ts";
import { state } from "./state.ts";

interface Message {
  role: "user" | "assistant";
  content: string;
}

export interface Selection {
  path: string;
  startLine: number;
  endLine: number;
}

const history: Message[] = [];
let selection: Selection | null = null;
let running: AbortController | null = null;

/** Attaches lines of a file to the next question. */
export function setSelection(sel: Selection | null): void {
  selection = sel;
  const chip = byId("chat-selection");
  chip.hidden = !sel;
  if (!sel) {
    chip.replaceChildren();
    return;
  }
  chip.replaceChildren(
    h("span", {}, "Asking about "),
    citationLink({ path: sel.path, startLine: sel.startLine, endLine: sel.endLine }, lineLabel(sel)),
    h("button", {
      type: "button",
      class: "ghost icon small",
      "aria-label": "Don't send the selected lines",
      onclick: () => setSelection(null),
    }, "✕"),
  );
}

function lineLabel(sel: Selection): string {
  return sel.startLine === sel.endLine
    ? `${sel.path}, line ${sel.startLine}`
    : `${sel.path}, lines ${sel.startLine}–${sel.endLine}`;
}

/** Wires the form: Enter sends, Shift+Enter is a new line; Stop cancels. */
export function initChat(): void {
  const form = byId<HTMLFormElement>("chat-form");
  const input = byId<HTMLTextAreaElement>("chat-input");
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text || running) return;
    input.value = "";
    void send(text, selection);
    setSelection(null);
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  byId("chat-stop").addEventListener("click", () => running?.abort());
}

function setRunning(controller: AbortController | null): void {
  running = controller;
  byId("chat-stop").hidden = !controller;
  byId<HTMLButtonElement>("chat-send").disabled = !!controller;
}

async function send(text: string, sel: Selection | null): Promise<void> {
  const repo = state.repo;
  if (!repo) return;
  const log = byId("chat-log");
  const userItem = h(
    "li",
    { class: "msg user" },
    h("span", { class: "who visually-hidden" }, "You:"),
    sel
      ? h(
        "p",
        { class: "about" },
        citationLink({ path: sel.path, startLine: sel.startLine, endLine: sel.endLine }, lineLabel(sel)),
      )
      : null,
    h("p", { class: "text" }, text),
  );
  const answer = h("div", { class: "markdown answer" });
  const sourcesEl = h("div", { class: "sources" });
  const notice = h("div", { class: "notice-area" });
  const botItem = h(
    "li",
    { class: "msg assistant", "data-status": "waiting", "aria-busy": "true" },
    h("span", { class: "who visually-hidden" }, "RepoLM:"),
    h(
      "p",
      { class: "status-line busy" },
      h("span", { class: "spinner", "aria-hidden": "true" }),
      "Reading the code…",
    ),
    answer,
    sourcesEl,
    notice,
  );
  log.append(userItem, botItem);
  // The question at the top leaves the answer the room above the sticky form ("nearest" put it under).
  userItem.scrollIntoView({ block: "start" });

  history.push({ role: "user", content: text });
  const controller = new AbortController();
  setRunning(controller);
  let content = "";
  let ended = false;
  const draw = frameRenderer(() => {
    renderMarkdown(answer, content);
    linkCitations(answer, (p) => state.files.has(p), citationLink);
  });
  try {
    const res = await request(`/api/repos/${encodeURIComponent(repo.id)}/chat`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "text/event-stream" },
      body: JSON.stringify({
        messages: history.slice(-20),
        ...(sel ? { selection: sel } : {}),
      }),
      signal: controller.signal,
    });
    if (!res.body) throw new ApiError(0, "bad_response", "The answer was empty. Try again.");
    botItem.dataset.status = "streaming";
    for await (const event of readSse(res.body)) {
      const data = JSON.parse(event.data);
      if (event.event === "sources") renderSources(sourcesEl, data as Source[]);
      else if (event.event === "delta") {
        content += String(data.text ?? "");
        botItem.querySelector(".status-line")?.remove();
        draw();
      } else if (event.event === "done") {
        ended = true;
        break;
      } else if (event.event === "error") {
        throw new ApiError(
          0,
          String(data.code ?? "chat_failed"),
          String(data.message ?? "The answer failed."),
        );
      }
    }
    if (!ended) {
      throw new ApiError(
        0,
        "stream_cut",
        "The answer was cut off (the connection dropped). Ask again to get the rest.",
      );
    }
    history.push({ role: "assistant", content });
    botItem.dataset.status = "done";
  } catch (e) {
    const stopped = (e as Error).name === "AbortError";
    if (stopped) {
      botItem.dataset.status = "stopped";
      if (content) history.push({ role: "assistant", content });
      else history.pop();
      notice.append(h("p", { class: "muted small" }, "Stopped."));
    } else {
      botItem.dataset.status = "error";
      if (content) history.push({ role: "assistant", content });
      else history.pop();
      showError(notice, e, () => {
        userItem.remove();
        botItem.remove();
        void send(text, sel);
      });
    }
  } finally {
    botItem.querySelector(".status-line")?.remove();
    botItem.removeAttribute("aria-busy");
    renderMarkdown(answer, content);
    linkCitations(answer, (p) => state.files.has(p), citationLink);
    setRunning(null);
  }
}

function renderSources(el: HTMLElement, sources: Source[]): void {
  if (!Array.isArray(sources) || !sources.length) return;
  el.replaceChildren(
    h("span", { class: "muted small" }, "Sources: "),
    ...sources.slice(0, 12).flatMap((s, i) => [
      i ? " " : "",
      citationLink(
        s,
        s.startLine === s.endLine ? `${s.path}:${s.startLine}` : `${s.path}:${s.startLine}–${s.endLine}`,
      ),
    ]),
  );
}
