/**
 * An upload that is not an archive, sent with curl to the real app (main.ts as a subprocess): the
 * ingest gives up on the first chunk while the rest of the part is still arriving. This once
 * ended the process (Deno's Readable.toWeb pushed the part's later chunks into the cancelled
 * stream: an uncaught TypeError); only curl against main.ts reproduced it on this machine.
 */
import assert from "node:assert/strict";
import { startAppProcess } from "../bench/app_process.ts";

const curl = await new Deno.Command("curl", { args: ["--version"], stdout: "null" }).output()
  .then((o) => o.success, () => false);

Deno.test({
  name: "uploads of random bytes named .tgz are 400 invalid_archive, and the app lives on",
  ignore: !curl,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "repolm-upload-" });
    const app = await startAppProcess({ RATE_LIMITS: "ingest=1000/1m", MAX_INGESTS_PER_CLIENT: "3" });
    try {
      const bytes = new Uint8Array(3_000_000);
      for (let at = 0; at < bytes.length; at += 65536) crypto.getRandomValues(bytes.subarray(at, at + 65536));
      await Deno.writeFile(`${dir}/x.tgz`, bytes);
      for (let i = 0; i < 5; i++) {
        const out = await new Deno.Command("curl", {
          args: ["-sS", "-H", "Expect:", "-F", `file=@${dir}/x.tgz`, `${app.url}/api/repos/upload`],
        }).output();
        const body = new TextDecoder().decode(out.stdout);
        assert.match(
          body,
          /"code":"invalid_archive"/,
          `upload ${i + 1}: ${new TextDecoder().decode(out.stderr)}`,
        );
      }
      const health = await fetch(`${app.url}/health`);
      assert.equal(health.status, 200);
      await health.body?.cancel();
    } finally {
      await app.kill();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
