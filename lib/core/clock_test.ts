import assert from "node:assert/strict";
import { systemClock } from "./clock.ts";

Deno.test("the system clock's sleep past the longest timer (24.8 days) does not end at once", async () => {
  const stop = new AbortController();
  let ended = false;
  const sleeping = systemClock.sleep(30 * 86_400_000, stop.signal).then(
    () => ended = true,
    () => {},
  );
  await systemClock.sleep(200);
  stop.abort();
  await sleeping;
  assert.equal(ended, false, "a single timer would have fired after about 1 ms");
});

Deno.test("the system clock's sleep ends after its time, or rejects with the signal's reason", async () => {
  const start = performance.now();
  await systemClock.sleep(20);
  assert.ok(performance.now() - start >= 19);
  const stop = new AbortController();
  stop.abort(new Error("stopped"));
  await assert.rejects(systemClock.sleep(10_000, stop.signal), /stopped/);
});
