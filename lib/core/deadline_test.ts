import assert from "node:assert/strict";
import { FakeClock } from "../../testing/fake_clock.ts";
import { Deadline } from "./deadline.ts";

Deadline;

Deno.test("Deadline aborts at its time, earlier when shortened, at once when a followed signal does", async () => {
  const clock = new FakeClock();
  const start = clock.now();
  using deadline = new Deadline(clock, start + 10_000, () => new Error("out of time"));
  assert.equal(deadline.remainingMs(), 10_000);
  const aborted = new Promise<number>((resolve) =>
    deadline.signal.addEventListener("abort", () => resolve(clock.now() - start))
  );
  clock.sleep(2_000).then(() => deadline.shorten(clock.now() + 3_000));
  clock.sleep(4_000).then(() => deadline.shorten(clock.now() + 60_000));
  assert.equal(await clock.run(aborted), 5_000, "shortened to 2 s + 3 s; never lengthened");
  assert.equal((deadline.signal.reason as Error).message, "out of time");
  assert.equal(deadline.remainingMs(), 0);

  const interrupt = new AbortController();
  using followed = new Deadline(clock, clock.now() + 10_000, () => "late", [interrupt.signal]);
  interrupt.abort("SIGTERM");
  assert.equal(followed.signal.reason, "SIGTERM");
});

Deno.test("a wall-clock step moves no Deadline", async () => {
  const clock = new FakeClock();
  const start = clock.now();
  using deadline = new Deadline(clock, start + 10_000, () => "late");
  clock.sleep(1_000).then(() => clock.stepWallClock(-3_600_000));
  clock.sleep(2_000).then(() => clock.stepWallClock(7_200_000));
  const at = new Promise<number>((resolve) =>
    deadline.signal.addEventListener("abort", () => resolve(clock.now() - start))
  );
  assert.equal(await clock.run(at), 10_000);
});
