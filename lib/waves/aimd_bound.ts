/**
 * The number of nodes allowed to pull from one registry at once, adapted to its rate limit:
 * halved when it answers 429 (multiplicative decrease), raised by one for each image pulled
 * since (additive increase). Unbounded until the first 429.
 *
 * @module
 */

/** Options for {@linkcode AimdBound}. */
export interface AimdBoundOptions {
  /**
   * The bound is multiplied by this on a rate limit.
   * @default {0.5}
   */
  decreaseFactor?: number;
  /**
   * Added to the bound for each image pulled after a decrease.
   * @default {1}
   */
  increaseStep?: number;
  /**
   * The bound never goes below this.
   * @default {1}
   */
  minimum?: number;
  /**
   * A burst of 429s within this many milliseconds of a decrease counts as the same one, so that
   * nodes told at once do not drive the bound to its minimum in one go.
   * @default {5_000}
   */
  cooldownMs?: number;
}

/** One registry's adaptive bound. */
export class AimdBound {
  #bound = Infinity;
  #lastDecrease = -Infinity;
  #decreases = 0;
  readonly #options: Required<AimdBoundOptions>;

  /** Starts unbounded. */
  constructor(options: AimdBoundOptions = {}) {
    this.#options = {
      decreaseFactor: options.decreaseFactor ?? 0.5,
      increaseStep: options.increaseStep ?? 1,
      minimum: options.minimum ?? 1,
      cooldownMs: options.cooldownMs ?? 5_000,
    };
  }

  /** How many nodes may pull at once; `Infinity` before any rate limit. */
  get bound(): number {
    return this.#bound;
  }

  /** How many times the bound was cut. */
  get decreases(): number {
    return this.#decreases;
  }

  /**
   * Cuts the bound after a rate limit seen while `pullingNodes` nodes were pulling, unless it was
   * cut less than the cooldown ago. Returns true when it cut.
   */
  rateLimited(pullingNodes: number, now: number): boolean {
    if (now - this.#lastDecrease < this.#options.cooldownMs) return false;
    const base = Math.min(this.#bound, Math.max(1, pullingNodes));
    this.#bound = Math.max(this.#options.minimum, Math.floor(base * this.#options.decreaseFactor));
    this.#lastDecrease = now;
    this.#decreases++;
    return true;
  }

  /** Raises a finite bound after an image was pulled. */
  succeeded(): void {
    if (Number.isFinite(this.#bound)) this.#bound += this.#options.increaseStep;
  }
}
