/**
 * Bounded retries for API calls: conflicts, throttling, server errors and lost connections are
 * tried again with growing delays, everything else fails at once.
 *
 * @module
 */
import type { Clock } from "../core/clock.ts";
import { isRetryable } from "./kube_error.ts";

/** Options for {@linkcode retryCall}. */
export interface RetryCallOptions {
  /** Tells the time and waits. */
  clock: Clock;
  /** How many calls at most. @default {5} */
  attempts?: number;
  /** The wait after the first failure, doubled after each next one. @default {500} */
  initialDelayMs?: number;
  /** Give up when the next wait would end after this time (ms since the epoch). */
  deadline?: number;
  /** Stops the waits. */
  signal?: AbortSignal;
  /** Decides which errors are worth another call. @default {isRetryable} */
  retryable?: (error: unknown) => boolean;
  /** Told about each failed call that will be retried. */
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
}

/**
 * Calls `call` until it succeeds, its error is not retryable, or the attempts or the deadline
 * run out; then throws the last error.
 *
 * @example Usage
 * ```ts
 * import { retryCall } from "./retry_call.ts";
 * import { systemClock } from "../core/clock.ts";
 *
 * const answer = await retryCall(() => Promise.resolve(42), { clock: systemClock });
 * ```
 */
export async function retryCall<T>(
  call: (attempt: number) => Promise<T>,
  options: RetryCallOptions,
): Promise<T> {
  const attempts = options.attempts ?? 5;
  const retryable = options.retryable ?? isRetryable;
  let delayMs = options.initialDelayMs ?? 500;
  for (let attempt = 1;; attempt++) {
    try {
      return await call(attempt);
    } catch (error) {
      const late = options.deadline !== undefined &&
        options.clock.now() + delayMs > options.deadline;
      if (attempt >= attempts || late || !retryable(error) || options.signal?.aborted) throw error;
      options.onRetry?.(error, attempt, delayMs);
      await options.clock.sleep(delayMs, options.signal);
      delayMs *= 2;
    }
  }
}
