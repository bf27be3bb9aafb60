/**
 * Docker registry credentials (`.dockerconfigjson`, `config.json`, legacy `.dockercfg`) and the
 * kubelet's rules for choosing which of them to use for an image.
 *
 * @module
 */

import type { ImageReference } from "./reference.ts";

/** One registry's credentials from a docker config, with the fields the CRI `AuthConfig` takes. */
export interface RegistryCredential {
  /** The config key exactly as written, e.g. `https://index.docker.io/v1/` or `*.example.com`. */
  serverAddress: string;
  /** User name, from `username` or decoded from `auth`. */
  username?: string;
  /** Password, from `password` or decoded from `auth`. */
  password?: string;
  /** The `auth` field as written: base64 of `user:password`. */
  auth?: string;
  /** OAuth identity token (`identitytoken`). */
  identityToken?: string;
  /** Registry bearer token (`registrytoken`). */
  registryToken?: string;
}

/** Thrown by {@linkcode parseDockerConfig} when a docker config cannot be used; never holds secrets. */
export class DockerConfigError extends Error {
  /** The file name or label of the config that failed. */
  readonly source: string;

  /**
   * Creates the error for the config `source`, explaining `problem`.
   *
   * @param source The file name or label of the config.
   * @param problem What is wrong, as a sentence fragment following the source name.
   */
  constructor(source: string, problem: string) {
    super(
      `${source} ${problem}; pass a file like ` +
        `{"auths":{"registry.example.com":{"auth":"<base64 user:password>"}}}.`,
    );
    this.name = "DockerConfigError";
    this.source = source;
  }
}

/**
 * Registry credentials read from one or more docker configs.
 *
 * Its `toString()`, `toJSON()` and console inspection list only server addresses, so logging a
 * config never leaks a secret; read {@linkcode DockerConfig.credentials} for the secrets.
 */
export class DockerConfig {
  /** The file name or label the credentials came from. */
  readonly source: string;
  /** The credentials, in file order. */
  readonly credentials: readonly RegistryCredential[];

  /**
   * Creates a config from already-parsed credentials, e.g. to merge several pull secrets:
   * `new DockerConfig("pull secrets", [...a.credentials, ...b.credentials])`.
   *
   * @param source The file name or label the credentials came from.
   * @param credentials The credentials, in the order they were written.
   */
  constructor(source: string, credentials: readonly RegistryCredential[]) {
    this.source = source;
    this.credentials = credentials;
  }

  /** Returns a secret-free summary: the source and the server addresses. */
  toJSON(): { source: string; serverAddresses: string[] } {
    return { source: this.source, serverAddresses: this.credentials.map((c) => c.serverAddress) };
  }

  /** Returns a secret-free description such as `docker config images.json (quay.io, ghcr.io)`. */
  toString(): string {
    const addresses = this.credentials.map((c) => c.serverAddress).join(", ");
    return `docker config ${this.source} (${addresses || "no registries"})`;
  }

  /** Keeps `console.log` in Deno from printing the secrets. */
  [Symbol.for("Deno.customInspect")](): string {
    return `DockerConfig ${JSON.stringify(this.toJSON())}`;
  }

  /** Keeps `util.inspect` in Node-compatible code from printing the secrets. */
  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return `DockerConfig ${JSON.stringify(this.toJSON())}`;
  }
}

/**
 * Top-level keys of the docker CLI's `config.json`; seeing one without `auths` means the file
 * is a `config.json` with no inline credentials (e.g. it uses `credsStore`), not a `.dockercfg`.
 */
const CLI_CONFIG_KEYS = new Set([
  "credsStore",
  "credHelpers",
  "HttpHeaders",
  "psFormat",
  "imagesFormat",
  "detachKeys",
  "proxies",
  "currentContext",
  "plugins",
  "aliases",
  "features",
  "experimental",
]);

/** Entry fields that must be strings, keyed by their lowercase JSON name. */
const STRING_FIELDS = {
  username: "username",
  password: "password",
  auth: "auth",
  identitytoken: "identityToken",
  registrytoken: "registryToken",
  email: undefined,
} as const;

/**
 * Parses a docker config in the `{"auths": {...}}` form (`.dockerconfigjson`, `config.json`) or
 * the legacy `.dockercfg` form (a top-level map of registry to entry).
 *
 * Each entry may have `username`, `password`, `auth` (base64 of `user:password`, decoded to fill
 * `username` and `password` when they are absent), `identitytoken` and `registrytoken`; `email`
 * and unknown fields are ignored, as are credential helpers (`credsStore`, `credHelpers`).
 * Field names match case-insensitively, as Go's `encoding/json` does.
 *
 * @example Usage
 * ```ts
 * import { parseDockerConfig } from "./docker_config.ts";
 *
 * const config = parseDockerConfig('{"auths":{"quay.io":{"auth":"YWxpY2U6czNjcmV0"}}}', "auth.json");
 * config.credentials[0].username; // "alice"
 * ```
 *
 * @param text The file's contents.
 * @param sourceName The file name or label, used in error messages and `DockerConfig.source`.
 * @returns The parsed credentials.
 * @throws {DockerConfigError} When the text is not JSON, not an object, or an entry is malformed.
 */
export function parseDockerConfig(text: string, sourceName: string): DockerConfig {
  const invalid = (problem: string) => new DockerConfigError(sourceName, problem);
  let data: unknown;
  try {
    data = JSON.parse(text.replace(/^\uFEFF/, ""));
  } catch (error) {
    throw invalid(`is not valid JSON (${describeJsonError(error)})`);
  }
  if (!isRecord(data)) throw invalid(`does not hold a JSON object (found ${describeType(data)})`);

  let entries = data;
  if (Object.hasOwn(data, "auths")) {
    const auths = data.auths;
    if (!isRecord(auths)) {
      throw invalid(`has an "auths" field that is not an object (found ${describeType(auths)})`);
    }
    entries = auths;
  } else if (Object.keys(data).some((key) => CLI_CONFIG_KEYS.has(key))) {
    entries = {};
  }

  const credentials = Object.entries(entries).map(([serverAddress, entry]) => {
    const where = `for registry ${JSON.stringify(serverAddress)}`;
    if (!isRecord(entry)) {
      throw invalid(`has an entry ${where} that is not an object (found ${describeType(entry)})`);
    }
    const credential: RegistryCredential = { serverAddress };
    for (const [field, value] of Object.entries(entry)) {
      const lower = field.toLowerCase();
      if (!Object.hasOwn(STRING_FIELDS, lower) || value === null) continue;
      if (typeof value !== "string") {
        throw invalid(
          `has a "${field}" ${where} that is not a string (found ${describeType(value)})`,
        );
      }
      const property = STRING_FIELDS[lower as keyof typeof STRING_FIELDS];
      if (property !== undefined && value !== "") credential[property] = value;
    }
    if (credential.auth !== undefined) {
      const decoded = decodeAuth(credential.auth);
      if (decoded === undefined) {
        throw invalid(`has an "auth" ${where} that is not base64 of "user:password"`);
      }
      const [username, password] = decoded;
      if (credential.username === undefined && username !== "") credential.username = username;
      if (credential.password === undefined && password !== "") credential.password = password;
    }
    return credential;
  });
  return new DockerConfig(sourceName, credentials);
}

/**
 * Returns every credential that applies to an image, in the order the kubelet tries them.
 *
 * Reproduces the kubelet's `BasicDockerKeyring`: each server address is read as a URL (with
 * `https://` added when it has no scheme), a leading `/v1/` or `/v2/` path is dropped, and the
 * key is host plus path. Keys are de-duplicated and sorted in reverse so more specific keys come
 * first. A key matches when the image's host has as many dot-separated labels, each matching the
 * key's label as a glob (`*.example.com` matches `a.example.com` only), the ports are equal, and
 * the image's `/repository` path starts with the key's path. For Docker Hub images, keys on
 * `index.docker.io` (such as `https://index.docker.io/v1/`) count as `docker.io`, which also
 * covers the kubelet's fallback to `index.docker.io` credentials.
 *
 * @example Usage
 * ```ts
 * import { credentialsFor, parseDockerConfig } from "./docker_config.ts";
 * import { parseImageReference } from "./reference.ts";
 *
 * const config = parseDockerConfig('{"auths":{"*.example.com":{"auth":"YTpi"}}}', "pull-secret");
 * credentialsFor(config, parseImageReference("eu.example.com/app:1")).length; // 1
 * ```
 *
 * @param config The credentials to choose from.
 * @param image The image to pull.
 * @returns The matching credentials, most specific first; empty for an anonymous pull.
 */
export function credentialsFor(config: DockerConfig, image: ImageReference): RegistryCredential[] {
  const byKey = new Map<string, RegistryCredential[]>();
  for (const credential of config.credentials) {
    const key = keyringKey(credential.serverAddress);
    byKey.set(key, [...(byKey.get(key) ?? []), credential]);
  }
  const target = splitKey(`${image.registry}/${image.repository}`);
  const keys = [...byKey.keys()].sort((a, b) => a < b ? 1 : a > b ? -1 : 0);
  return keys.filter((key) => keyMatches(splitKey(key), target)).flatMap((key) => byKey.get(key)!);
}

/**
 * Describes a credential without its secret, e.g. `user "alice" for registry.example.com`.
 *
 * @param credential The credential to describe.
 * @returns A description safe to log.
 */
export function describeCredential(credential: RegistryCredential): string {
  const kind = credential.username !== undefined
    ? `user ${JSON.stringify(credential.username)}`
    : credential.identityToken !== undefined
    ? "identity token"
    : credential.registryToken !== undefined
    ? "registry token"
    : "empty credentials";
  return `${kind} for ${credential.serverAddress}`;
}

/** The kubelet's index key for a server address: host plus path without `/v1` or `/v2`. */
function keyringKey(serverAddress: string): string {
  const url = serverAddress.startsWith("https://") || serverAddress.startsWith("http://")
    ? serverAddress
    : `https://${serverAddress}`;
  const rest = url.slice(url.indexOf("://") + 3).replace(/[?#].*$/s, "");
  const slash = rest.indexOf("/");
  const authority = slash === -1 ? rest : rest.slice(0, slash);
  let host = authority.slice(authority.lastIndexOf("@") + 1);
  let path = slash === -1 ? "" : rest.slice(slash);
  if (path.startsWith("/v1/") || path.startsWith("/v2/")) path = path.slice(3);
  // Image references normalise index.docker.io to docker.io; do the same for keys so both match.
  if (host === "index.docker.io") host = "docker.io";
  return path === "" || path === "/" ? host : host + path;
}

interface SplitKey {
  labels: string[];
  port: string;
  path: string;
}

/** Splits `host[:port][/path]` as Go's `url.Parse` and `net.SplitHostPort` would. */
function splitKey(key: string): SplitKey {
  const slash = key.indexOf("/");
  const hostPort = slash === -1 ? key : key.slice(0, slash);
  const path = slash === -1 ? "" : key.slice(slash);
  let host = hostPort;
  let port = "";
  if (hostPort.startsWith("[")) {
    const end = hostPort.indexOf("]");
    if (end !== -1 && hostPort[end + 1] === ":") {
      host = hostPort.slice(1, end);
      port = hostPort.slice(end + 2);
    }
  } else if (hostPort.includes(":") && hostPort.indexOf(":") === hostPort.lastIndexOf(":")) {
    [host, port] = hostPort.split(":");
  }
  return { labels: host.split("."), port, path };
}

function keyMatches(key: SplitKey, target: SplitKey): boolean {
  return key.port === target.port &&
    key.labels.length === target.labels.length &&
    target.path.startsWith(key.path) &&
    key.labels.every((label, i) => globMatches(label, target.labels[i]));
}

/**
 * Matches one host label like Go's `filepath.Match` (`*`, `?`, `[a-z]`, `\`); malformed patterns
 * never match. Shared with the credential-provider `matchImages` rules, which use the same glob.
 *
 * @example Usage
 * ```ts
 * import { globMatches } from "./docker_config.ts";
 *
 * globMatches("*", "eu"); // true
 * ```
 *
 * @param pattern The glob, e.g. `*` or `eu-[a-z]`.
 * @param text The label to match.
 * @returns Whether the whole label matches.
 */
export function globMatches(pattern: string, text: string): boolean {
  let source = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "*") {
      source += "[^/]*";
    } else if (c === "?") {
      source += "[^/]";
    } else if (c === "[") {
      const end = readClass(pattern, i);
      if (end === undefined) return false;
      source += end.source;
      i = end.last;
    } else if (c === "\\") {
      if (++i >= pattern.length) return false;
      source += escapeRegExp(pattern[i]);
    } else {
      source += escapeRegExp(c);
    }
  }
  try {
    return new RegExp(`^${source}$`).test(text);
  } catch {
    return false; // e.g. a reversed range such as [z-a]
  }
}

/** Translates a `[...]` glob class starting at `start`; returns its regex and closing index. */
function readClass(pattern: string, start: number): { source: string; last: number } | undefined {
  let i = start + 1;
  let source = "[";
  if (pattern[i] === "^") {
    source += "^";
    i++;
  }
  const readChar = (): string | undefined => {
    let c = pattern[i];
    if (c === undefined || c === "-" || c === "]") return undefined;
    if (c === "\\") c = pattern[++i];
    if (c === undefined) return undefined;
    i++;
    return `\\${c}`.replace(/^\\([A-Za-z0-9])$/, "$1");
  };
  for (let ranges = 0;; ranges++) {
    if (pattern[i] === "]" && ranges > 0) return { source: `${source}]`, last: i };
    const low = readChar();
    if (low === undefined) return undefined;
    source += low;
    if (pattern[i] === "-") {
      i++;
      const high = readChar();
      if (high === undefined) return undefined;
      source += `-${high}`;
    }
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[\\^$.*+?()[\]{}|/-]/g, "\\$&");
}

/** Decodes `auth` to `[user, password]`; undefined when it is not base64 of `user:password`. */
function decodeAuth(auth: string): [string, string] | undefined {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(auth) || auth.replace(/=+$/, "").length % 4 === 1) {
    return undefined;
  }
  let binary: string;
  try {
    binary = atob(auth);
  } catch {
    return undefined;
  }
  const decoded = new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0)));
  const colon = decoded.indexOf(":");
  return colon === -1 ? undefined : [decoded.slice(0, colon), decoded.slice(colon + 1)];
}

/**
 * The JSON.parse error without the input excerpt V8 adds, which could contain a secret, and on one
 * line: an unexpected line break is named `'\n'`, not written out.
 */
function describeJsonError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message
    .replace(/, (?:\.\.\.)?".*"(?:\.\.\.)? is not valid JSON$/s, "")
    .replace(/\r/g, "\\r")
    .replace(/\n/g, "\\n");
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function describeType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}
