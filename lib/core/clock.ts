/**
 * Time as a parameter: the pull scheduler asks a {@linkcode Clock} for the time and for waits, so
 * tests can run it on virtual time.
 *
 * @module
 */

/** A source of time and of cancellable waits. */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /**
   * Resolves after `ms` milliseconds; rejects with `signal.reason` as soon as `signal` aborts.
   */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/**
 * The real clock on monotonic time: `now()` is `performance.timeOrigin + performance.now()`, in
 * milliseconds like `Date.now()` but never stepped by a change of the system time, so durations
 * and deadlines read from it (leases, timeouts) stay right; waits are timers, as in
 * {@linkcode systemClock}.
 */
export const monotonicClock: Clock = {
  now: () => performance.timeOrigin + performance.now(),
  sleep: (ms, signal) => systemClock.sleep(ms, signal),
};

/** The real clock: `Date.now()` and timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal?.reason);
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  },
};
