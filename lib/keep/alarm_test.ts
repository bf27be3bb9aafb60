import assert from "node:assert/strict";
import { setAlarm, sleepFor } from "./alarm.ts";

Deno.test("an alarm calls back once, after its time", async () => {
  const start = performance.now();
  const fired: number[] = [];
  await new Promise<void>((resolve) => {
    setAlarm(30, () => {
      fired.push(performance.now() - start);
      resolve();
    });
  });
  assert.equal(fired.length, 1);
  assert.ok(fired[0] >= 29, `fired after ${fired[0]} ms`);
});

Deno.test("a cancelled alarm never calls back", async () => {
  let fired = false;
  setAlarm(10, () => fired = true).cancel();
  await sleepFor(40, new AbortController().signal);
  assert.equal(fired, false);
});

Deno.test("sleepFor ends early when its signal aborts, and at once when it already has", async () => {
  const stop = new AbortController();
  const start = performance.now();
  const sleeping = sleepFor(60_000, stop.signal);
  stop.abort();
  await sleeping;
  await sleepFor(60_000, stop.signal);
  assert.ok(performance.now() - start < 1_000);
});

Deno.test("an alarm past the longest timer (24.8 days) does not fire at once", async () => {
  let fired = false;
  const alarm = setAlarm(30 * 86_400_000, () => fired = true);
  await sleepFor(200, new AbortController().signal);
  alarm.cancel();
  assert.equal(fired, false, "a single timer would have fired after about 1 ms");
});
