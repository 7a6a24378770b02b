/**
 * scripts/cluster.ts and bench/loadtest.ts together: two instances on one KV file with the fakes,
 * a short mixed load through the load-test tool, and nothing left running afterwards.
 */
import assert from "node:assert/strict";
import { startCluster } from "../../scripts/cluster.ts";
import { runLoad } from "../../bench/loadtest.ts";

function alive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

Deno.test("cluster + loadtest: 2 instances, a short mixed load with no failures, then nothing left running", async () => {
  const port = 21000 + Math.floor(Math.random() * 2000);
  const cluster = await startCluster({
    instances: 2,
    port,
    fakes: true,
    llmTokens: 40,
    llmDelayMs: 5,
    quiet: true,
  });
  const pids = cluster.instances.map((i) => i.pid);
  try {
    assert.deepEqual(cluster.urls, [`http://127.0.0.1:${port}`, `http://127.0.0.1:${port + 1}`]);
    const stats = await (await fetch(cluster.statsUrl)).json();
    assert.equal(stats.instances.length, 2);
    const run = await runLoad({
      urls: cluster.urls,
      users: 24,
      durationSeconds: 3,
      scenarios: ["mixed", "viral"],
      workers: 1,
      timeoutMs: 15_000,
      xff: true,
      client: "raw",
      clusterStats: cluster.statsUrl,
      log: () => {},
    });
    for (const [name, s] of Object.entries(run.scenarios)) {
      assert.equal(s.total.failures, 0, `${name}: ${JSON.stringify(s.total.failuresBy)} ${s.total.examples}`);
      assert.ok(s.total.ok > 0, name);
    }
    const viral = run.scenarios.viral.checks;
    assert.equal(viral.viewersWithFullIdenticalText, 24);
    assert.equal(viral.modelCallsWithSetup, 1, "one model call for 24 viewers");
  } finally {
    await cluster.stop();
  }
  for (const pid of pids) assert.equal(alive(pid), false, `instance ${pid} still running`);
  assert.equal(
    await Deno.stat(cluster.kvPath).then(() => true, () => false),
    false,
    "the temporary KV file is gone",
  );
});
