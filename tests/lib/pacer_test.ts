import assert from "node:assert/strict";
import { eventLoopPacer, SLICE_MS } from "../../lib/pacer.ts";

Deno.test("eventLoopPacer pauses for a timer once a slice has passed, and not before", async () => {
  let clock = 1000;
  const pace = eventLoopPacer(() => clock);
  assert.equal(pace(), undefined);
  clock += SLICE_MS - 1;
  assert.equal(pace(), undefined, "within the slice: no pause");

  clock += 1;
  const order: string[] = [];
  setTimeout(() => order.push("other work"), 0);
  const pause = pace();
  assert.ok(pause instanceof Promise);
  await pause;
  order.push("loop");
  assert.deepEqual(order, ["other work", "loop"], "a timer queued before the pause ran during it");

  // the next slice counts from the end of the pause
  assert.equal(pace(), undefined);
  clock += SLICE_MS;
  const next = pace();
  assert.ok(next instanceof Promise);
  await next;
});
