/**
 * Waits for changes to KV keys without busy polling: `kv.watch` wakes at once for writes made by
 * this process (and by every process on Deno Deploy), and a slow poll (≥ 250 ms) catches writes
 * other processes make to a shared local KV file, where `watch` does not wake across processes.
 */
export async function* watchKeys<T>(
  kv: Deno.Kv,
  keys: Deno.KvKey[],
  signal: AbortSignal,
  pollMs = 1000,
): AsyncGenerator<Deno.KvEntryMaybe<T>[]> {
  const stream = kv.watch<T[]>(keys, { raw: true });
  const reader = stream.getReader();
  let pendingRead: Promise<unknown> | null = null;
  let lastStamps = "";
  let watching = true;
  let wakeOnAbort = () => {};
  const aborted = new Promise<void>((r) => wakeOnAbort = r);
  const onAbort = () => {
    wakeOnAbort();
    reader.cancel().catch(() => {});
  };
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    while (!signal.aborted) {
      if (watching) {
        pendingRead ??= reader.read().then((r) => {
          pendingRead = null;
          if (r.done) watching = false;
        }, () => {
          pendingRead = null;
          watching = false;
        });
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise((r) => timer = setTimeout(r, pollMs));
      await Promise.race(watching && pendingRead ? [pendingRead, timeout, aborted] : [timeout, aborted]);
      clearTimeout(timer);
      if (signal.aborted) return;
      const entries = await kv.getMany<T[]>(keys);
      const stamps = entries.map((e) => e.versionstamp ?? "-").join(",");
      if (stamps !== lastStamps) {
        lastStamps = stamps;
        yield entries as Deno.KvEntryMaybe<T>[];
      }
    }
  } finally {
    signal.removeEventListener("abort", onAbort);
    await reader.cancel().catch(() => {});
  }
}
