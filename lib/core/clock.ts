/**
 * Time as a parameter: code that measures durations, deadlines, backoff or batch windows asks a
 * {@linkcode Clock}, so tests can run it on virtual time, and a step of the wall clock (chrony
 * setting a fresh node's time) neither cuts a wait short nor stretches it.
 *
 * @module
 */

/** A source of time and of cancellable waits. */
export interface Clock {
  /**
   * Milliseconds on a monotonic clock, from an arbitrary origin: for durations and deadlines
   * only, never shown as a time of day. Wall-clock steps do not move it.
   */
  now(): number;
  /** Milliseconds since the Unix epoch, for what people read (log times, when an attempt began). */
  wallNow(): number;
  /**
   * Resolves after `ms` milliseconds; rejects with `signal.reason` as soon as `signal` aborts.
   */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/**
 * The longest wait one timer takes: `setTimeout` and `AbortSignal.timeout` fire at once (after
 * about 1 ms) when asked for longer, as browsers do. Longer waits are made of several.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** The real clock: `performance.now()` for durations, `Date.now()` for the time of day, timers. */
export const systemClock: Clock = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      let timer: ReturnType<typeof setTimeout>;
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal?.reason);
      };
      const wait = (left: number) => {
        timer = setTimeout(() => {
          if (left > MAX_TIMER_MS) return wait(left - MAX_TIMER_MS);
          signal?.removeEventListener("abort", onAbort);
          resolve();
        }, Math.min(left, MAX_TIMER_MS));
      };
      wait(ms);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  },
};
