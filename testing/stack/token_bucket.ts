/**
 * A token bucket that caps the combined byte rate of many concurrent writers.
 *
 * @module
 */

/** The smallest grant worth waking a writer for, unless it asks for less. */
const MIN_GRANT_BYTES = 16 * 1024;

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
 * import { TokenBucket } from "./token_bucket.ts";
 *
 * const bucket = new TokenBucket(1_000_000);
 * const chunk = new Uint8Array(64 * 1024);
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
   * Waits until a worthwhile budget is available (`max`, or 16 KiB, or one tick's worth of
   * bytes, whichever is least), then takes and returns up to `max`. Granting less would make
   * writers spin on tiny grants and burn the CPU the benchmarks measure.
   * Returns 0 without waiting if `max` is 0, or once `signal` is aborted.
   */
  async take(max: number, signal?: AbortSignal): Promise<number> {
    while (max > 0 && !signal?.aborted) {
      this.#refill();
      const worthwhile = Math.max(1, Math.min(max, MIN_GRANT_BYTES, this.#capacity()));
      if (this.#tokens >= worthwhile) {
        const granted = Math.min(max, Math.floor(this.#tokens));
        this.#tokens -= granted;
        return granted;
      }
      const waitMs = ((worthwhile - this.#tokens) / this.#rate) * 1000;
      await this.#sleep(Math.min(this.#tickMs, Math.max(1, Math.ceil(waitMs))));
    }
    return 0;
  }

  #capacity(): number {
    return Math.max(1, (this.#rate * this.#tickMs) / 1000);
  }

  #refill(): void {
    const now = this.#now();
    this.#tokens = Math.min(
      this.#capacity(),
      this.#tokens + ((now - this.#last) * this.#rate) / 1000,
    );
    this.#last = now;
  }
}
