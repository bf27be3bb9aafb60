/**
 * Timers for `keep`'s idle process that cost less memory than `setTimeout`.
 *
 * Measured under Deno 2.9 (`bench/sleep_memory.ts` and the notes in `bench/README.md`): the
 * first `setTimeout` of a process adds about 3 MiB of resident memory, which stays, while a
 * timer of `AbortSignal.timeout` adds under 1 MiB. Both fire from the same event loop, on the
 * monotonic clock. So the idle process waits with these. An alarm that is cancelled is only
 * ignored when it fires (an `AbortSignal.timeout` cannot be cleared), and keeps the event loop
 * alive until then; the callers keep at most a few pending at a time, and `keep` only ever ends
 * by exiting.
 *
 * @module
 */
import { MAX_TIMER_MS } from "../core/clock.ts";

/** An alarm set by {@linkcode setAlarm}. */
export interface Alarm {
  /** Makes sure the alarm's callback is not called (if it has not been yet). */
  cancel(): void;
}

/**
 * Calls `onTime` once, `ms` milliseconds from now, unless the alarm is cancelled first. A wait
 * longer than {@linkcode MAX_TIMER_MS} (about 24.8 days) is made of several timers.
 */
export function setAlarm(ms: number, onTime: () => void): Alarm {
  let live = true;
  const wait = (left: number) => {
    AbortSignal.timeout(Math.min(Math.max(0, left), MAX_TIMER_MS)).addEventListener("abort", () => {
      if (!live) return;
      if (left > MAX_TIMER_MS) return wait(left - MAX_TIMER_MS);
      live = false;
      onTime();
    }, { once: true });
  };
  wait(ms);
  return { cancel: () => live = false };
}

/** Resolves after `ms` milliseconds, or as soon as `signal` aborts (never rejects). */
export function sleepFor(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      alarm.cancel();
      signal.removeEventListener("abort", done);
      resolve();
    };
    const alarm = setAlarm(ms, done);
    if (signal.aborted) done();
    else signal.addEventListener("abort", done, { once: true });
  });
}
