/**
 * An uploaded archive often wraps the repository in one top folder (`tar czf x.tgz proj/`, GitHub's
 * Download ZIP, `npm pack`'s `package/`), which is dropped from every path; an archive of several
 * folders and files (`tar czf x.tgz lib routes README.md`) keeps its paths. Whether every entry is
 * under one folder is known only at the end, so entries are held back while they all are, up to a
 * bounded look-ahead: the first entry outside the folder decides "keep"; reaching the end or the
 * bound decides "drop" (past the bound, an entry outside the folder keeps its path).
 */
import type { ArchiveEntry } from "./archive.ts";
import { checkArchivePath, type PathCheck } from "./paths.ts";

/** An entry and its checked path, with any top folder dropped. */
export interface PlacedEntry {
  entry: ArchiveEntry;
  checked: PathCheck;
}

const LOOKAHEAD_BYTES = 8 * 1024 * 1024;
const MACOS_METADATA = "__MACOSX";
const LOOKAHEAD_ENTRIES = 5000;

/** The folder a checked path starts with (its first segment), or null for a file at the top. */
function folderOf(entry: ArchiveEntry, checked: PathCheck): string | null {
  if (!checked.ok || !checked.path) return null;
  const slash = checked.path.indexOf("/");
  if (slash >= 0) return checked.path.slice(0, slash);
  return entry.kind === "directory" ? checked.path : null;
}

/** The entry as placed: its checked path, without its first folder when `drop`. */
function placed(entry: ArchiveEntry, checked: PathCheck, drop: boolean): PlacedEntry {
  if (!drop || !checked.ok) return { entry, checked };
  const slash = checked.path.indexOf("/");
  return { entry, checked: { ok: true, path: slash < 0 ? "" : checked.path.slice(slash + 1) } };
}

/** `entries` with the strip that drops the archive's top folder when it has exactly one. */
export async function* placeUnderTopFolder(
  entries: AsyncIterable<ArchiveEntry>,
): AsyncGenerator<PlacedEntry> {
  let top: string | null | undefined;
  let decided: "drop" | "keep" | null = null;
  let held: PlacedEntry[] = [];
  let heldBytes = 0;
  const release = function* (drop: boolean) {
    for (const { entry, checked } of held) yield placed(entry, checked, drop);
    held = [];
  };
  for await (const entry of entries) {
    const checked = checkArchivePath(entry.path, 0);
    const folder = folderOf(entry, checked);
    // macOS's zip adds __MACOSX/ beside the folder it zipped: it decides nothing (its AppleDouble
    // files are skipped as binary)
    if (folder === MACOS_METADATA) {
      yield { entry, checked };
      continue;
    }
    if (top === undefined) top = folder;
    const under = top !== null && folder === top;
    if (decided === "drop") {
      yield placed(entry, checked, under);
    } else if (decided === "keep" || !under) {
      decided = "keep";
      yield* release(false);
      yield { entry, checked };
    } else {
      held.push({ entry, checked });
      heldBytes += entry.content?.byteLength ?? 0;
      if (heldBytes > LOOKAHEAD_BYTES || held.length > LOOKAHEAD_ENTRIES) {
        decided = "drop";
        yield* release(true);
      }
    }
  }
  yield* release(true);
}
