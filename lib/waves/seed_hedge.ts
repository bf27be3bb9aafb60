/**
 * When an image's first-wave seed is slow enough to deserve a second one (a hedge): it has pulled
 * for far longer than seeds usually take, `factor` times the median of the last seeds' pull
 * times, kept within [`minMs`, `maxMs`]; before any seed has landed, after `maxMs`. The
 * coordinator sees no bytes, only how long each seed held its lease until it landed, so time is
 * the measure of a slow seed.
 *
 * @module
 */

/** Options for {@linkcode SeedHedge}. */
export interface SeedHedgeOptions {
  /**
   * A seed slower than this many times the median seed is hedged.
   * @default {3}
   */
  factor?: number;
  /**
   * Never hedge a seed that has pulled for less than this.
   * @default {10_000}
   */
  minMs?: number;
  /**
   * Always hedge a seed that has pulled for this long.
   * @default {120_000}
   */
  maxMs?: number;
}

const RECENT = 31;

/** The recent seeds' pull times, and the threshold they give. */
export class SeedHedge {
  readonly #factor: number;
  readonly #minMs: number;
  readonly #maxMs: number;
  readonly #recent: number[] = [];
  #threshold: number;

  /** Starts with no seed measured: the threshold is `maxMs`. */
  constructor(options: SeedHedgeOptions = {}) {
    this.#factor = options.factor ?? 3;
    this.#minMs = options.minMs ?? 10_000;
    this.#maxMs = options.maxMs ?? 120_000;
    this.#threshold = this.#maxMs;
  }

  /** How long a seed may pull before a second node seeds the same image. */
  get thresholdMs(): number {
    return this.#threshold;
  }

  /** A seed landed its image after pulling for `ms`. */
  landed(ms: number): void {
    this.#recent.push(ms);
    if (this.#recent.length > RECENT) this.#recent.shift();
    const sorted = [...this.#recent].sort((a, b) => a - b);
    const median = sorted[sorted.length >> 1];
    this.#threshold = Math.min(this.#maxMs, Math.max(this.#minMs, median * this.#factor));
  }
}
