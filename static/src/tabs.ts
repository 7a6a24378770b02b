/// <reference lib="dom" />
/** The view tabs as a WAI-ARIA tablist: roving tabindex, arrows/Home/End, automatic activation. */
import { byId } from "./dom.ts";

export type TabKind = "overview" | "slides" | "podcast" | "concepts" | "chat";

let current: TabKind = "overview";
let listener: (kind: TabKind) => void = () => {};

function tabs(): HTMLButtonElement[] {
  return [...byId("tablist").querySelectorAll<HTMLButtonElement>("[role=tab]")];
}

/** True for the name of a tab (`?tab=` in an address). */
export function isTab(kind: string | null): kind is TabKind {
  return tabs().some((tab) => tab.dataset.kind === kind);
}

/** The tab that is showing. */
export function currentTab(): TabKind {
  return current;
}

/** Shows the panel of `kind`, and tells the listener. */
export function selectTab(kind: TabKind, options: { focus?: boolean } = {}): void {
  current = kind;
  for (const tab of tabs()) {
    const selected = tab.dataset.kind === kind;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    byId(tab.getAttribute("aria-controls")!).hidden = !selected;
    if (selected && options.focus) tab.focus();
  }
  listener(kind);
}

/** Wires clicks and keys; `onSelect` runs whenever a tab is shown. */
export function initTabs(onSelect: (kind: TabKind) => void): void {
  listener = onSelect;
  const list = byId("tablist");
  list.addEventListener("click", (e) => {
    const tab = (e.target as HTMLElement).closest<HTMLButtonElement>("[role=tab]");
    if (tab) selectTab(tab.dataset.kind as TabKind);
  });
  list.addEventListener("keydown", (e) => {
    const all = tabs();
    const at = all.findIndex((t) => t.dataset.kind === current);
    let next = -1;
    if (e.key === "ArrowRight") next = (at + 1) % all.length;
    else if (e.key === "ArrowLeft") next = (at - 1 + all.length) % all.length;
    else if (e.key === "Home") next = 0;
    else if (e.key === "End") next = all.length - 1;
    if (next < 0) return;
    e.preventDefault();
    selectTab(all[next].dataset.kind as TabKind, { focus: true });
  });
}
