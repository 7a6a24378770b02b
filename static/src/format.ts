/** Number, size and time formats for people. */

/** 1234567 → "1.2 MB". */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

/** 12345 → "12,345". */
export function formatCount(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

/** 12345 → "12.3k"; small numbers stay whole. */
export function formatCompact(n: number): string {
  if (n < 1000) return String(Math.round(n));
  if (n < 1_000_000) return `${(n / 1000).toFixed(n < 10_000 ? 1 : 0)}k`;
  return `${(n / 1_000_000).toFixed(1)}M`;
}

/** Seconds → "45 s", "3 min", "1 h 5 min". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** "indexing" → "Indexing". */
export function phaseLabel(phase: string): string {
  const known: Record<string, string> = {
    queued: "Waiting in line",
    downloading: "Downloading",
    extracting: "Unpacking",
    indexing: "Indexing files",
    uploading: "Uploading",
    processing: "Unpacking and indexing",
    done: "Ready",
  };
  return known[phase] ?? (phase.charAt(0).toUpperCase() + phase.slice(1).replaceAll("_", " "));
}
