/**
 * A counting semaphore whose waits can be cancelled, used to bound how many pulls run at once.
 *
 * @module
 */

/** Grants at most `limit` holders at a time; `Infinity` (or 0) grants everyone at once. */
export class Semaphore {
  #free: number;
  #waiting: Array<() => void> = [];

  /** Creates a semaphore with `limit` slots; 0 or `Infinity` means no bound. */
  constructor(limit: number) {
    this.#free = limit <= 0 ? Infinity : limit;
  }

  /**
   * Waits for a slot and returns the function that gives it back. Rejects with `signal.reason`
   * if `signal` aborts first.
   */
  acquire(signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#free > 0) {
      this.#free--;
      return Promise.resolve(this.#releaser());
    }
    return new Promise((resolve, reject) => {
      const grant = () => {
        signal?.removeEventListener("abort", onAbort);
        resolve(this.#releaser());
      };
      const onAbort = () => {
        this.#waiting = this.#waiting.filter((waiter) => waiter !== grant);
        reject(signal?.reason);
      };
      this.#waiting.push(grant);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  #releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiting.shift();
      if (next) next();
      else this.#free++;
    };
  }
}
