/**
 * The kubelet's cache of credential provider answers, kept for one run: an answer is stored under
 * the image, its registry or one global key, as its `cacheKeyType` says, until it expires.
 *
 * @module
 */
import type { Clock } from "../core/clock.ts";
import type { RegistryCredential } from "../image/docker_config.ts";
import { registryOf } from "./match_images.ts";
import type { ProviderResponse } from "./provider_response.ts";

const GLOBAL_KEY = "global";

interface Entry {
  auth: RegistryCredential[];
  storedAt: number;
  expiresAt: number;
}

/** One provider's cached answers. */
export class ResponseCache {
  readonly #clock: Clock;
  readonly #entries = new Map<string, Entry>();

  /**
   * Creates an empty cache.
   *
   * @param clock Tells the time entries expire against.
   */
  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /**
   * The cached credentials for `image` (a repository such as `gcr.io/p/app`): the entry for the
   * image, else for its registry, else the global one, skipping expired entries (an entry lives
   * while the time is not after its expiry, as the kubelet decides).
   *
   * @param image The image repository.
   * @returns The credentials, or undefined when nothing valid is cached.
   */
  get(image: string): RegistryCredential[] | undefined {
    return this.#find(image)?.entry.auth;
  }

  /**
   * Forgets the answer {@linkcode ResponseCache.get} would give for `image` when it was stored at
   * or before `storedBy`, so the plugin is asked again: the registry refused what it said. An
   * answer stored later (another image renewed it meanwhile) is kept.
   *
   * @param image The image repository.
   * @param storedBy A time of this cache's clock, e.g. when the refused answer was looked up.
   */
  forget(image: string, storedBy: number): void {
    const found = this.#find(image);
    if (found && found.entry.storedAt <= storedBy) this.#entries.delete(found.key);
  }

  #find(image: string): { key: string; entry: Entry } | undefined {
    for (const key of [`image:${image}`, `registry:${registryOf(image)}`, GLOBAL_KEY]) {
      const entry = this.#entries.get(key);
      if (!entry) continue;
      if (this.#clock.now() > entry.expiresAt) {
        this.#entries.delete(key);
        continue;
      }
      return { key, entry };
    }
    return undefined;
  }

  /**
   * Stores `response` for `image` like the kubelet: under the key its `cacheKeyType` names, for
   * its `cacheDuration`, or `defaultCacheDurationMs` when it has none; a duration of 0 stores
   * nothing.
   *
   * @param image The image repository the plugin was asked about.
   * @param response The plugin's answer.
   * @param defaultCacheDurationMs The provider's `defaultCacheDuration`.
   */
  put(image: string, response: ProviderResponse, defaultCacheDurationMs: number): void {
    const durationMs = response.cacheDurationMs ?? defaultCacheDurationMs;
    if (durationMs === 0) return;
    const key = response.cacheKeyType === "Image"
      ? `image:${image}`
      : response.cacheKeyType === "Registry"
      ? `registry:${registryOf(image)}`
      : GLOBAL_KEY;
    const now = this.#clock.now();
    this.#entries.set(key, { auth: response.auth, storedAt: now, expiresAt: now + durationMs });
  }
}
