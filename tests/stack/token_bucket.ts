/**
 * A token bucket that caps the combined byte rate of many concurrent writers.
 *
 * @module
 */

/** Options for {@linkcode TokenBucket}. */
export interface TokenBucketOptions {
  /** Refill granularity in milliseconds; the bucket holds at most one tick of tokens. @default {50} */
  tickMs?: number;
  /** Clock in milliseconds. @default {() => performance.now()} */
  now?: () => number;
  /** Waits `ms` milliseconds. @default {a setTimeout-based sleep} */
  sleep?: (ms: number) => Promise<void>;
}

/**
 * Hands out byte budgets at `bytesPerSecond`, shared by all callers of {@linkcode TokenBucket.take}.
 * Refill is computed lazily from the clock, so an idle bucket has no timer running.
 *
 * @example
 * ```ts
 * const bucket = new TokenBucket(1_000_000);
 * const n = await bucket.take(chunk.byteLength); // 1 <= n <= chunk.byteLength
 * ```
 */
export class TokenBucket {
  #rate: number;
  #tickMs: number;
  #now: () => number;
  #sleep: (ms: number) => Promise<void>;
  #tokens = 0;
  #last: number;

  /** Creates a bucket refilled at `bytesPerSecond`; it starts empty. */
  constructor(bytesPerSecond: number, options: TokenBucketOptions = {}) {
    this.#rate = bytesPerSecond;
    this.#tickMs = options.tickMs ?? 50;
    this.#now = options.now ?? (() => performance.now());
    this.#sleep = options.sleep ??
      ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.#last = this.#now();
  }

  /** The refill rate in bytes per second. */
  get bytesPerSecond(): number {
    return this.#rate;
  }

  /** Changes the refill rate; takes effect from now on. */
  set bytesPerSecond(rate: number) {
    this.#refill();
    this.#rate = rate;
  }

  /**
   * Waits until at least one byte of budget is available, then takes and returns up to `max`.
   * Returns 0 without waiting if `max` is 0, or once `signal` is aborted.
   */
  async take(max: number, signal?: AbortSignal): Promise<number> {
    while (max > 0 && !signal?.aborted) {
      this.#refill();
      if (this.#tokens >= 1) {
        const granted = Math.min(max, Math.floor(this.#tokens));
        this.#tokens -= granted;
        return granted;
      }
      await this.#sleep(this.#tickMs);
    }
    return 0;
  }

  #refill(): void {
    const now = this.#now();
    const capacity = Math.max(1, (this.#rate * this.#tickMs) / 1000);
    this.#tokens = Math.min(capacity, this.#tokens + ((now - this.#last) * this.#rate) / 1000);
    this.#last = now;
  }
}
