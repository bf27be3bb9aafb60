/**
 * A deadline on a {@linkcode Clock} as an `AbortSignal`: it aborts when the clock reaches the
 * deadline, or at once when one of the signals it follows aborts, and the deadline can be brought
 * forward (a SIGTERM shortens what is left of a run to a moment).
 *
 * @module
 */
import type { Clock } from "./clock.ts";

/**
 * The deadline of some work: pass {@linkcode Deadline.signal} to every wait and call of the work,
 * and bound each with {@linkcode Deadline.remainingMs}.
 *
 * @example
 * ```ts
 * import { Deadline } from "./deadline.ts";
 * import { systemClock } from "./clock.ts";
 *
 * async function withinFiveSeconds(work: (signal: AbortSignal) => Promise<void>) {
 *   using deadline = new Deadline(systemClock, systemClock.now() + 5_000, () =>
 *     new Error("out of time"));
 *   await work(deadline.signal);
 * }
 * ```
 */
export class Deadline implements Disposable {
  readonly #clock: Clock;
  readonly #controller = new AbortController();
  #reason: () => unknown;
  #at: number;
  #timer = new AbortController();

  /**
   * Starts counting down to `at` (a time of `clock`).
   *
   * @param clock The clock `at` is a time of.
   * @param at When the signal aborts.
   * @param reason Makes the abort reason at the deadline.
   * @param follow Signals whose abort aborts this one at once, with their reason.
   */
  constructor(clock: Clock, at: number, reason: () => unknown, follow: AbortSignal[] = []) {
    this.#clock = clock;
    this.#at = at;
    this.#reason = reason;
    for (const signal of follow) {
      if (signal.aborted) this.#controller.abort(signal.reason);
      else signal.addEventListener("abort", () => this.#abort(signal.reason), { once: true });
    }
    this.#arm();
  }

  /** Aborts at the deadline, or when a followed signal aborts. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** The deadline, a time of the clock. */
  get at(): number {
    return this.#at;
  }

  /** Milliseconds until the deadline; 0 once it has passed or the signal aborted. */
  remainingMs(): number {
    if (this.signal.aborted) return 0;
    return Math.max(0, this.#at - this.#clock.now());
  }

  /**
   * Brings the deadline forward to `at` when that is earlier, with `reason` for the abort if
   * given; never moves it later.
   */
  shorten(at: number, reason?: () => unknown): void {
    if (at >= this.#at || this.signal.aborted) return;
    this.#at = at;
    if (reason) this.#reason = reason;
    this.#timer.abort();
    this.#timer = new AbortController();
    this.#arm();
  }

  /** Stops the countdown (the signal stays as it is). */
  [Symbol.dispose](): void {
    this.#timer.abort();
  }

  #arm(): void {
    if (this.signal.aborted) return;
    this.#clock.sleep(Math.max(0, this.#at - this.#clock.now()), this.#timer.signal).then(
      () => this.#abort(this.#reason()),
      () => {},
    );
  }

  #abort(reason: unknown): void {
    if (this.signal.aborted) return;
    this.#timer.abort();
    this.#controller.abort(reason);
  }
}
