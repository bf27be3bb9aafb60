/**
 * The exec protocol's messages: the `CredentialProviderRequest` a plugin reads on standard input
 * and the `CredentialProviderResponse` it prints on standard output.
 *
 * @module
 */
import { parse as parseYaml } from "yaml";
import { parseDuration } from "../core/duration.ts";
import type { RegistryCredential } from "../image/docker_config.ts";

/** How long and for which images a response may be reused. */
export type CacheKeyType = "Image" | "Registry" | "Global";

/** A plugin's answer, checked. */
export interface ProviderResponse {
  /** Reuse the answer for the same image repository, the same registry, or every image. */
  cacheKeyType: CacheKeyType;
  /** Milliseconds to reuse it; undefined to use the provider's `defaultCacheDuration`. */
  cacheDurationMs?: number;
  /** Credentials keyed by registry glob, in the response's order (`serverAddress` is the key). */
  auth: RegistryCredential[];
}

/** A plugin answered with something that is not a usable response; never holds its text. */
export class ProviderResponseError extends Error {
  /** Creates the error; `problem` must not quote the response (it may hold secrets). */
  constructor(problem: string) {
    super(problem);
    this.name = "ProviderResponseError";
  }
}

/**
 * The request for `image`, as the kubelet writes it.
 *
 * @param image The image repository, e.g. `gcr.io/project/app`.
 * @param apiVersion The provider's protocol version.
 * @returns The JSON text to write to the plugin's standard input.
 */
export function encodeRequest(image: string, apiVersion: string): string {
  return JSON.stringify({ apiVersion, kind: "CredentialProviderRequest", image });
}

/**
 * Parses a plugin's standard output (JSON, or YAML as the kubelet's decoder also takes) and
 * checks it: `apiVersion` equal to the provider's, `kind: CredentialProviderResponse`, a
 * `cacheKeyType` of Image, Registry or Global, an optional `cacheDuration`, and `auth` entries
 * with string `username` and `password`. Error messages describe the problem without quoting the
 * output, which may contain credentials.
 *
 * @example Usage
 * ```ts
 * import { parseResponse } from "./provider_response.ts";
 *
 * const response = parseResponse(
 *   '{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse",' +
 *     '"cacheKeyType":"Registry","cacheDuration":"6h","auth":{"*.gcr.io":{"username":"u","password":"p"}}}',
 *   "credentialprovider.kubelet.k8s.io/v1",
 * );
 * response.cacheDurationMs; // 21600000
 * ```
 *
 * @param text The plugin's standard output.
 * @param apiVersion The protocol version the provider is configured with.
 * @returns The checked response.
 * @throws {ProviderResponseError} When the output is not such a response.
 */
export function parseResponse(text: string, apiVersion: string): ProviderResponse {
  let data: unknown;
  try {
    data = parseYaml(text);
  } catch {
    throw new ProviderResponseError("printed something that is neither JSON nor YAML");
  }
  if (!isRecord(data) || (data.apiVersion === undefined && data.kind === undefined)) {
    throw new ProviderResponseError("printed something that is not a CredentialProviderResponse");
  }
  if (data.apiVersion !== apiVersion) {
    throw new ProviderResponseError(
      `answered with apiVersion ${quoteShort(data.apiVersion)}, not the configured ${apiVersion}`,
    );
  }
  if (data.kind !== "CredentialProviderResponse") {
    throw new ProviderResponseError(
      `answered with kind ${quoteShort(data.kind)}, not CredentialProviderResponse`,
    );
  }
  const cacheKeyType = data.cacheKeyType;
  if (cacheKeyType !== "Image" && cacheKeyType !== "Registry" && cacheKeyType !== "Global") {
    throw new ProviderResponseError(
      `answered with cacheKeyType ${
        quoteShort(cacheKeyType)
      }; it must be Image, Registry or Global`,
    );
  }
  return {
    cacheKeyType,
    cacheDurationMs: readCacheDuration(data.cacheDuration),
    auth: readAuth(data.auth),
  };
}

function readCacheDuration(value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "string") {
    try {
      return parseDuration(value);
    } catch {
      // Reported below.
    }
  }
  throw new ProviderResponseError(
    `answered with cacheDuration ${quoteShort(value)}, which is not a duration like "6h"`,
  );
}

function readAuth(value: unknown): RegistryCredential[] {
  if (value === undefined || value === null) return [];
  if (!isRecord(value)) throw new ProviderResponseError("answered with an auth that is not a map");
  return Object.entries(value).map(([serverAddress, entry]) => {
    if (
      !isRecord(entry) ||
      !["username", "password"].every((field) =>
        entry[field] === undefined || typeof entry[field] === "string"
      )
    ) {
      throw new ProviderResponseError(
        `answered with an auth entry for ${quoteShort(serverAddress)} that is not ` +
          "{username, password} strings",
      );
    }
    const credential: RegistryCredential = { serverAddress };
    if (entry.username) credential.username = entry.username as string;
    if (entry.password) credential.password = entry.password as string;
    return credential;
  });
}

/** A short quote of a field that is not a secret (a version, a kind, a key). */
function quoteShort(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
