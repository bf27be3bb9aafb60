/**
 * The schedule of pull attempts: how long each attempt may take and how long to wait before the
 * next one. Both double from an initial value up to their own maximum.
 *
 * @module
 */

/** Options for {@linkcode attemptTimeoutMs} and {@linkcode retryDelayMs}. */
export interface RetryScheduleOptions {
  /**
   * How long the first attempt may take, in milliseconds.
   * @default {30_000}
   */
  initialAttemptTimeoutMs: number;
  /**
   * The most any attempt may take, in milliseconds.
   * @default {300_000}
   */
  maxAttemptTimeoutMs: number;
  /**
   * The wait after the first failed attempt, in milliseconds.
   * @default {1_000}
   */
  initialDelayMs: number;
  /**
   * The longest wait between two attempts, in milliseconds.
   * @default {600_000}
   */
  maxDelayMs: number;
  /**
   * How far a delay may stray from its nominal value, as a fraction of it (0.2 is ±20 %), so
   * that many nodes retrying one registry do not hit it in lockstep.
   * @default {0.2}
   */
  jitter?: number;
}

/** The defaults of the original tool's flags. */
export const DEFAULT_RETRY_SCHEDULE: Readonly<Required<RetryScheduleOptions>> = Object.freeze({
  initialAttemptTimeoutMs: 30_000,
  maxAttemptTimeoutMs: 300_000,
  initialDelayMs: 1_000,
  maxDelayMs: 600_000,
  jitter: 0.2,
});

/** Returns the timeout of attempt number `attempt` (1 for the first): doubled each time, capped. */
export function attemptTimeoutMs(attempt: number, options: RetryScheduleOptions): number {
  return doubled(options.initialAttemptTimeoutMs, attempt, options.maxAttemptTimeoutMs);
}

/**
 * Returns the wait after failed attempt number `attempt` (1 for the first): doubled each time,
 * moved by up to ±`jitter` of itself, and never more than the maximum.
 */
export function retryDelayMs(
  attempt: number,
  options: RetryScheduleOptions,
  random: () => number = Math.random,
): number {
  const nominal = doubled(options.initialDelayMs, attempt, options.maxDelayMs);
  const jitter = options.jitter ?? DEFAULT_RETRY_SCHEDULE.jitter;
  const moved = nominal * (1 + jitter * (2 * random() - 1));
  return Math.max(0, Math.min(options.maxDelayMs, Math.round(moved)));
}

function doubled(initial: number, attempt: number, max: number): number {
  // 2 ** 60 is past any real duration; cap the exponent so the product stays finite.
  const factor = 2 ** Math.min(Math.max(attempt - 1, 0), 60);
  return Math.min(max, initial * factor);
}
