/**
 * Credentials from kubelet credential provider plugins for one run: runs each plugin whose
 * `matchImages` match an image, reuses answers as their cache keys and durations allow, and
 * matches the returned `auth` keys to the image with the kubelet's docker keyring rules.
 *
 * @module
 */
import { type Clock, systemClock } from "../core/clock.ts";
import { Semaphore } from "../core/semaphore.ts";
import { credentialsFor, DockerConfig, type RegistryCredential } from "../image/docker_config.ts";
import type { ImageReference } from "../image/reference.ts";
import { execPlugin } from "./exec_plugin.ts";
import { imageMatches } from "./match_images.ts";
import type { CredentialProvider } from "./provider_config.ts";
import type { ProviderResponse } from "./provider_response.ts";
import { ResponseCache } from "./response_cache.ts";

/** Runs one provider for one image repository; {@linkcode execPlugin} in production. */
export type RunPlugin = (
  provider: CredentialProvider,
  image: string,
  signal?: AbortSignal,
) => Promise<ProviderResponse>;

/** A plugin call that gave nothing usable; the run goes on without that plugin's answer. */
export interface PluginFailure {
  /** The provider's name. */
  provider: string;
  /** The image repository it was asked about. */
  image: string;
  /** Why, without secrets. */
  error: string;
}

/** One provider with its cache, its one-call-at-a-time lock, and whether it hung. */
interface ProviderSlot {
  provider: CredentialProvider;
  cache: ResponseCache;
  lock: Semaphore;
  /** The image it hung on; a plugin that hung is not run again in this run. */
  hungOn?: string;
}

/** Options for {@linkcode ProviderKeyring.credentialsFor}. */
export interface CredentialsForOptions {
  /**
   * Ask the plugins again instead of using answers cached at or before this time of the keyring's
   * clock ({@linkcode ProviderKeyring.now}); absent, cached answers are used while they live.
   */
  renewStoredBy?: number;
}

/** Options for {@linkcode ProviderKeyring}. */
export interface ProviderKeyringOptions {
  /** Directory of the plugin executables (`--image-credential-provider-bin-dir`). */
  binDir: string;
  /** Bound on each plugin call in milliseconds. @default {60000, the kubelet's} */
  timeoutMs?: number;
  /** Tells the time cache entries expire against. @default {systemClock} */
  clock?: Clock;
  /** Told about each failed plugin call. */
  onFailure?: (failure: PluginFailure) => void;
  /** Told about each plugin call before it starts (for debug logs and counts). */
  onCall?: (provider: string, image: string) => void;
  /** Runs a plugin. @default {execPlugin with binDir and timeoutMs} */
  runPlugin?: RunPlugin;
}

/**
 * The plugins of a `CredentialProviderConfig`, with their answers cached for the run.
 *
 * Calls to one plugin are made one at a time, and each waits for the answer before it looks in
 * the cache, so 100 images of one registry run a plugin that answers with `cacheKeyType:
 * Registry` once (the kubelet, which deduplicates only equal images, may run it once per image).
 * A plugin that hangs past the timeout is not run again in the run, so a hung plugin costs one
 * timeout, not one per image.
 *
 * @example Usage
 * ```ts
 * import { ProviderKeyring } from "./provider_keyring.ts";
 * import { parseImageReference } from "../image/reference.ts";
 * import type { CredentialProvider } from "./provider_config.ts";
 *
 * async function credentials(providers: CredentialProvider[]) {
 *   const keyring = new ProviderKeyring(providers, { binDir: "/usr/local/bin" });
 *   return await keyring.credentialsFor(parseImageReference("gcr.io/project/app:1"));
 * }
 * ```
 */
export class ProviderKeyring {
  readonly #providers: ProviderSlot[];
  readonly #options: ProviderKeyringOptions;
  readonly #run: RunPlugin;
  readonly #clock: Clock;

  /**
   * Creates the keyring; no plugin runs until an image asks for credentials.
   *
   * @param providers The config's providers, in file order.
   * @param options Where the plugins are and how to run them.
   */
  constructor(providers: readonly CredentialProvider[], options: ProviderKeyringOptions) {
    const clock = options.clock ?? systemClock;
    this.#clock = clock;
    this.#providers = providers.map((provider) => ({
      provider,
      cache: new ResponseCache(clock),
      lock: new Semaphore(1),
    }));
    this.#options = options;
    this.#run = options.runPlugin ??
      ((provider, image, signal) =>
        execPlugin(provider, image, {
          binDir: options.binDir,
          timeoutMs: options.timeoutMs,
          signal,
        }));
  }

  /** The time of the clock cache entries are stored and expire against. */
  now(): number {
    return this.#clock.now();
  }

  /**
   * The plugin credentials for `image`, most specific `auth` key first. Providers' answers are
   * merged in config order, an earlier provider's entry winning over a later one with the same
   * key, as the kubelet documents; a failed call counts as no answer and is reported to
   * `onFailure`. When `signal` aborts (the run is ending), a running plugin is killed and the
   * answer is empty, without a warning.
   *
   * With `options.renewStoredBy`, cached answers stored at or before that time (of the
   * keyring's clock) are not used: the plugin is asked again, because the registry refused what it
   * said. An answer stored later, by another image's renewal meanwhile, is used as it is.
   *
   * @param image The image to pull.
   * @param signal Stops waiting for plugins.
   * @param options Whether to renew answers the registry refused.
   * @returns The matching credentials; empty when no plugin matches or answers.
   */
  async credentialsFor(
    image: ImageReference,
    signal?: AbortSignal,
    options: CredentialsForOptions = {},
  ): Promise<RegistryCredential[]> {
    const repository = `${image.registry}/${image.repository}`;
    const merged = new Map<string, RegistryCredential>();
    for (const entry of this.#providers) {
      if (!entry.provider.matchImages.some((glob) => imageMatches(glob, repository))) continue;
      const answer = await this.#answer(entry, repository, signal, options.renewStoredBy);
      for (const credential of answer) {
        if (!merged.has(credential.serverAddress)) merged.set(credential.serverAddress, credential);
      }
    }
    if (merged.size === 0) return [];
    return credentialsFor(new DockerConfig("credential providers", [...merged.values()]), image);
  }

  async #answer(
    entry: ProviderSlot,
    repository: string,
    signal: AbortSignal | undefined,
    renewStoredBy: number | undefined,
  ): Promise<RegistryCredential[]> {
    let release: () => void;
    try {
      release = await entry.lock.acquire(signal);
    } catch {
      return [];
    }
    try {
      if (renewStoredBy !== undefined) entry.cache.forget(repository, renewStoredBy);
      const cached = entry.cache.get(repository);
      if (cached) return cached;
      if (entry.hungOn !== undefined) {
        throw new Error(`was not run: it hung earlier in this run (for ${entry.hungOn})`);
      }
      this.#options.onCall?.(entry.provider.name, repository);
      const response = await this.#run(entry.provider, repository, signal);
      entry.cache.put(repository, response, entry.provider.defaultCacheDurationMs);
      return response.auth;
    } catch (error) {
      if (signal?.aborted) return [];
      if ((error as { timedOut?: boolean }).timedOut) entry.hungOn ??= repository;
      this.#options.onFailure?.({
        provider: entry.provider.name,
        image: repository,
        error: (error as Error).message,
      });
      return [];
    } finally {
      release();
    }
  }
}
