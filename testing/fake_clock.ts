/**
 * Virtual time for unit tests of code that takes a {@linkcode Clock}: waits resolve when the test
 * advances the clock, so hours of retries run in milliseconds and never depend on the machine.
 *
 * @module
 */
import type { Clock } from "../lib/core/clock.ts";

interface Timer {
  at: number;
  resolve: () => void;
}

/**
 * A {@linkcode Clock} whose time moves only when {@linkcode FakeClock.run} moves it. Its wall
 * clock moves with it, and can also be stepped alone ({@linkcode FakeClock.stepWallClock}), as
 * chrony steps a fresh node's clock.
 */
export class FakeClock implements Clock {
  #now: number;
  #wallOffset = 0;
  #timers: Timer[] = [];

  /** Starts the clock at `start` milliseconds (the wall clock at as many since the epoch). */
  constructor(start = 1_700_000_000_000) {
    this.#now = start;
  }

  /** The current virtual (monotonic) time. */
  now(): number {
    return this.#now;
  }

  /** The virtual wall clock: the monotonic time plus every step so far. */
  wallNow(): number {
    return this.#now + this.#wallOffset;
  }

  /** Steps the wall clock by `ms` (negative: back), leaving the monotonic time and timers alone. */
  stepWallClock(ms: number): void {
    this.#wallOffset += ms;
  }

  /** Resolves when virtual time reaches now + `ms`; rejects when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const timer: Timer = {
        at: this.#now + Math.max(0, ms),
        resolve: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
      };
      const onAbort = () => {
        this.#timers = this.#timers.filter((t) => t !== timer);
        reject(signal?.reason);
      };
      this.#timers.push(timer);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /**
   * Runs `work` to completion: whenever it is only waiting on virtual timers, jumps to the next
   * one. Throws if it waits on something that is not a timer of this clock (a deadlock).
   */
  async run<T>(work: Promise<T>): Promise<T> {
    let settled = false;
    const done = work.finally(() => settled = true);
    done.catch(() => {});
    while (true) {
      await new Promise((resolve) => setTimeout(resolve, 0));
      if (settled) return await done;
      if (this.#timers.length === 0) {
        throw new Error("FakeClock.run: the work waits on something other than this clock");
      }
      this.#timers.sort((a, b) => a.at - b.at);
      const next = this.#timers.shift()!;
      this.#now = Math.max(this.#now, next.at);
      next.resolve();
    }
  }
}
