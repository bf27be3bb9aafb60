/**
 * The kubelet's `CredentialProviderConfig` (`kubelet.config.k8s.io/v1`), read from YAML or JSON
 * and checked the way the kubelet checks it, so a config the node accepts works here unchanged.
 *
 * @module
 */
import { parse as parseYaml } from "yaml";
import { parseDuration } from "../core/duration.ts";

/** The only config version read; older ones name the same fields but are refused by name. */
export const CONFIG_API_VERSION = "kubelet.config.k8s.io/v1";

/** The exec protocol versions a provider may speak (same request and response fields). */
export const PROTOCOL_API_VERSIONS: readonly string[] = [
  "credentialprovider.kubelet.k8s.io/v1",
  "credentialprovider.kubelet.k8s.io/v1beta1",
  "credentialprovider.kubelet.k8s.io/v1alpha1",
];

/** One exec plugin of the config. */
export interface CredentialProvider {
  /** The executable's file name inside the plugin directory. */
  name: string;
  /** Registry globs (`*.dkr.ecr.*.amazonaws.com`, `gcr.io`) the plugin is run for. */
  matchImages: string[];
  /** How long a response without `cacheDuration` is cached, in milliseconds; 0 for never. */
  defaultCacheDurationMs: number;
  /** The exec protocol version, e.g. `credentialprovider.kubelet.k8s.io/v1`. */
  apiVersion: string;
  /** Command-line arguments. */
  args: string[];
  /** Environment variables added to the inherited environment. */
  env: Array<{ name: string; value: string }>;
}

/** Thrown by {@linkcode parseProviderConfig}; the message names the file, the field and the fix. */
export class ProviderConfigError extends Error {
  /**
   * Creates the error for config `source`.
   *
   * @param source The file the config came from.
   * @param problem What is wrong and what to do.
   */
  constructor(source: string, problem: string) {
    super(`credential provider config ${source}: ${problem}`);
    this.name = "ProviderConfigError";
  }
}

/**
 * Parses a `CredentialProviderConfig` in YAML or JSON and validates it like the kubelet: a
 * `kubelet.config.k8s.io/v1` `CredentialProviderConfig` with at least one provider; each has a
 * unique plain file `name`, non-empty `matchImages`, a `defaultCacheDuration` (a duration, not
 * negative) and a supported `apiVersion`. Providers with `tokenAttributes` are refused: they need
 * a pod's service-account token, which only the kubelet can request.
 *
 * @example Usage
 * ```ts
 * import { parseProviderConfig } from "./provider_config.ts";
 *
 * const providers = parseProviderConfig(`
 * apiVersion: kubelet.config.k8s.io/v1
 * kind: CredentialProviderConfig
 * providers:
 *   - name: ecr-credential-provider
 *     matchImages: ["*.dkr.ecr.*.amazonaws.com"]
 *     defaultCacheDuration: 12h
 *     apiVersion: credentialprovider.kubelet.k8s.io/v1
 * `, "config.yaml");
 * providers[0].defaultCacheDurationMs; // 43200000
 * ```
 *
 * @param text The file's contents.
 * @param source The file name, for messages.
 * @returns The providers, in file order.
 * @throws {ProviderConfigError} When the text is not such a config.
 */
export function parseProviderConfig(text: string, source: string): CredentialProvider[] {
  const fail = (problem: string) => new ProviderConfigError(source, problem);
  let data: unknown;
  try {
    data = parseYaml(text);
  } catch (error) {
    throw fail(`is neither YAML nor JSON (${(error as Error).message.split("\n")[0]})`);
  }
  if (!isRecord(data)) throw fail("does not hold an object; write a CredentialProviderConfig.");
  if (data.kind !== "CredentialProviderConfig") {
    throw fail(`has kind ${JSON.stringify(data.kind)}; it must be CredentialProviderConfig.`);
  }
  if (data.apiVersion !== CONFIG_API_VERSION) {
    throw fail(
      `has apiVersion ${JSON.stringify(data.apiVersion)}; only ${CONFIG_API_VERSION} is read ` +
        "(the fields of v1alpha1 and v1beta1 are the same: change the apiVersion line).",
    );
  }
  if (!Array.isArray(data.providers) || data.providers.length === 0) {
    throw fail("has no providers; list at least one under providers:.");
  }
  const providers = data.providers.map((entry, index) => parseProvider(entry, index, fail));
  const names = new Set<string>();
  for (const provider of providers) {
    if (names.has(provider.name)) {
      throw fail(`names provider ${JSON.stringify(provider.name)} twice; names must be unique.`);
    }
    names.add(provider.name);
  }
  return providers;
}

function parseProvider(
  entry: unknown,
  index: number,
  fail: (problem: string) => ProviderConfigError,
): CredentialProvider {
  const at = `providers[${index}]`;
  if (!isRecord(entry)) throw fail(`${at} is not an object.`);
  const name = entry.name;
  if (
    typeof name !== "string" || name === "" || /[/\\]/.test(name) || name === "." || name === ".."
  ) {
    throw fail(
      `${at}.name must be the plugin's file name in the plugin directory, without a path.`,
    );
  }
  const where = `provider ${JSON.stringify(name)}`;
  if (entry.tokenAttributes !== undefined) {
    throw fail(
      `${where} sets tokenAttributes (service-account token mode), which needs a pod's token ` +
        "that only the kubelet can request; give image-prefetcher a config without it.",
    );
  }
  const matchImages = entry.matchImages;
  if (!Array.isArray(matchImages) || matchImages.length === 0) {
    throw fail(`${where} has no matchImages; list the registries it serves, like "*.gcr.io".`);
  }
  for (const glob of matchImages) {
    if (typeof glob !== "string" || glob === "" || /\s|:\/\//.test(glob)) {
      throw fail(
        `${where} has the matchImages entry ${JSON.stringify(glob)}; write a registry glob ` +
          'without a scheme, like "*.dkr.ecr.*.amazonaws.com" or "registry.example.com:5000/team".',
      );
    }
  }
  if (!PROTOCOL_API_VERSIONS.includes(entry.apiVersion as string)) {
    throw fail(
      `${where} has apiVersion ${JSON.stringify(entry.apiVersion)}; use one of ` +
        `${PROTOCOL_API_VERSIONS.join(", ")}.`,
    );
  }
  return {
    name,
    matchImages: matchImages as string[],
    defaultCacheDurationMs: parseCacheDuration(entry.defaultCacheDuration, where, fail),
    apiVersion: entry.apiVersion as string,
    args: parseArgs(entry.args, where, fail),
    env: parseEnv(entry.env, where, fail),
  };
}

function parseCacheDuration(
  value: unknown,
  where: string,
  fail: (problem: string) => ProviderConfigError,
): number {
  if (typeof value !== "string") {
    throw fail(`${where} needs defaultCacheDuration, a duration like "12h" ("0s" for no caching).`);
  }
  try {
    return parseDuration(value);
  } catch (error) {
    throw fail(`${where} has defaultCacheDuration ${(error as Error).message}`);
  }
}

function parseArgs(
  value: unknown,
  where: string,
  fail: (problem: string) => ProviderConfigError,
): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || !value.every((arg) => typeof arg === "string")) {
    throw fail(`${where} has args that are not a list of strings.`);
  }
  return value;
}

function parseEnv(
  value: unknown,
  where: string,
  fail: (problem: string) => ProviderConfigError,
): Array<{ name: string; value: string }> {
  if (value === undefined || value === null) return [];
  const valid = Array.isArray(value) &&
    value.every((v) =>
      isRecord(v) && typeof v.name === "string" && /^[A-Za-z_][A-Za-z0-9_]*$/.test(v.name) &&
      typeof v.value === "string"
    );
  if (!valid) {
    throw fail(`${where} has env entries that are not {name: VARIABLE_NAME, value: "text"}.`);
  }
  return (value as Array<{ name: string; value: string }>).map((v) => ({
    name: v.name,
    value: v.value,
  }));
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
