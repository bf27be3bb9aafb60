/**
 * The answers of the Kubernetes API about tokens (TokenReview, SubjectAccessReview), kept for a
 * while so that 5,000 nodes polling every second do not become 5,000 API calls a second: keyed by
 * the SHA-256 of the token (the token itself is never kept), each answer for as long as its
 * producer says (well under the token's expiry), at most `maxEntries` answers, the least recently
 * used dropped first. Concurrent asks for one key share one review.
 *
 * @module
 */
import { type Clock, systemClock } from "../core/clock.ts";

/** An answer and how long it may be reused. */
export interface Reviewed<T> {
  /** The answer. */
  value: T;
  /** Milliseconds it may be reused; 0 to not keep it. */
  ttlMs: number;
}

/** Options for {@linkcode ReviewCache}. */
export interface ReviewCacheOptions {
  /**
   * The most answers kept (two tokens a node while the kubelet rotates them).
   * @default {20_000}
   */
  maxEntries?: number;
  /** The clock the reuse times are read from. @default {systemClock} */
  clock?: Clock;
}

interface Entry<T> {
  value: Promise<T>;
  expiresAt: number;
}

/** A bounded, expiring cache of review answers by key. */
export class ReviewCache<T> {
  readonly #entries = new Map<string, Entry<T>>();
  readonly #max: number;
  readonly #clock: Clock;

  /** Creates an empty cache. */
  constructor(options: ReviewCacheOptions = {}) {
    this.#max = options.maxEntries ?? 20_000;
    this.#clock = options.clock ?? systemClock;
  }

  /** How many answers are kept (or in flight). */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * The answer for `key`: a kept one still valid, the one in flight, or a new one from `review`.
   * A review that throws is not kept.
   */
  get(key: string, review: () => Promise<Reviewed<T>>): Promise<T> {
    const now = this.#clock.now();
    const kept = this.#entries.get(key);
    this.#entries.delete(key);
    if (kept && kept.expiresAt > now) {
      this.#entries.set(key, kept);
      return kept.value;
    }
    while (this.#entries.size >= this.#max) {
      this.#entries.delete(this.#entries.keys().next().value!);
    }
    const entry: Entry<T> = { value: Promise.resolve() as Promise<T>, expiresAt: Infinity };
    entry.value = review().then(
      ({ value, ttlMs }) => {
        if (ttlMs > 0) entry.expiresAt = this.#clock.now() + ttlMs;
        else if (this.#entries.get(key) === entry) this.#entries.delete(key);
        return value;
      },
      (error) => {
        if (this.#entries.get(key) === entry) this.#entries.delete(key);
        throw error;
      },
    );
    this.#entries.set(key, entry);
    return entry.value;
  }
}

/** The cache key of `token` (and a qualifier, like a path): its SHA-256, in hex. */
export async function tokenKey(token: string, qualifier = ""): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(`${qualifier}\0${token}`),
  );
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}
