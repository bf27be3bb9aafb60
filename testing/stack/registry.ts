/**
 * Runs a real OCI registry (CNCF distribution, the Debian `docker-registry` program) on
 * 127.0.0.1 with filesystem storage in a temporary directory and optional basic auth.
 *
 * @module
 */
import bcrypt from "bcryptjs";
import { type Daemon, readLogTail, spawnDaemon } from "./daemon.ts";
import { freePort } from "./free_port.ts";
import { findOnPath } from "./packages.ts";
import { waitUntil } from "./wait_until.ts";

/** A user name and password for registry basic auth. */
export interface RegistryCredentials {
  /** User name. */
  username: string;
  /** Password. */
  password: string;
}

/** Options for {@linkcode startRegistry}. */
export interface StartRegistryOptions {
  /** Require these credentials (htpasswd basic auth). @default {undefined, no auth} */
  auth?: RegistryCredentials;
  /**
   * Directory for config, storage and log; created if missing, and removed on stop only when we
   * created it as a temporary directory.
   *
   * @default {a new temporary directory}
   */
  dir?: string;
  /**
   * Run as a pull-through cache of this registry URL (`proxy: remoteurl:`), as an in-cluster
   * cache would be.
   */
  proxyRemoteUrl?: string;
  /** Path of the `docker-registry` program. @default {found on PATH} */
  binary?: string;
  /** How long to wait for `GET /v2/` to answer, in milliseconds. @default {15000} */
  startTimeoutMs?: number;
}

/** A running registry; stop it with `stop()` or `await using`. */
export interface Registry extends AsyncDisposable {
  /** `127.0.0.1:<port>`, for image references. */
  readonly host: string;
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** The credentials it requires, if any. */
  readonly auth?: RegistryCredentials;
  /** The registry's log file. */
  readonly logPath: string;
  /** The directory holding config, storage and log. */
  readonly dir: string;
  /** Stops the process and removes its temporary directory. Safe to call twice. */
  stop(): Promise<void>;
}

/** Thrown when the registry does not start; the message carries the tail of its log. */
export class RegistryStartError extends Error {
  /** Builds the error; `logTail` is appended to `message`. */
  constructor(message: string, logTail: string) {
    super(`${message}\nLast registry log lines:\n${logTail}`);
    this.name = "RegistryStartError";
  }
}

/** Returns the `Authorization` header value for basic auth with `credentials`. */
export function basicAuthorization(credentials: RegistryCredentials): string {
  return `Basic ${btoa(`${credentials.username}:${credentials.password}`)}`;
}

/**
 * Starts `docker-registry serve` on a free port of 127.0.0.1 and waits until `GET /v2/` answers
 * (200, or 401 with auth).
 *
 * @example
 * ```ts
 * await using registry = await startRegistry({ auth: { username: "u", password: "p" } });
 * console.log(registry.url);
 * ```
 */
export async function startRegistry(options: StartRegistryOptions = {}): Promise<Registry> {
  const binary = options.binary ?? await findOnPath("docker-registry");
  if (!binary) {
    throw new RegistryStartError(
      "docker-registry is not installed; run ensureDebianPackages() or apt-get install docker-registry",
      "",
    );
  }
  const ownsDir = options.dir === undefined;
  const dir = options.dir ?? await Deno.makeTempDir({ prefix: "ipf-registry-" });
  await Deno.mkdir(`${dir}/data`, { recursive: true });
  const logPath = `${dir}/registry.log`;
  const configPath = `${dir}/config.yml`;
  if (options.auth) {
    const hash = bcrypt.hashSync(options.auth.password, 6);
    await Deno.writeTextFile(`${dir}/htpasswd`, `${options.auth.username}:${hash}\n`);
  }
  try {
    // The port is picked before the registry binds it, so another process may win the race.
    for (let attempt = 1;; attempt++) {
      const host = `127.0.0.1:${freePort()}`;
      await Deno.writeTextFile(
        configPath,
        registryConfig(dir, host, options.auth !== undefined, options.proxyRemoteUrl),
      );
      const daemon = spawnDaemon(binary, ["serve", configPath], logPath, { cwd: dir });
      const url = `http://${host}`;
      const ready = await waitUntil(async () => {
        const response = await fetch(`${url}/v2/`);
        await response.body?.cancel();
        return response.status === 200 || response.status === 401;
      }, { timeoutMs: options.startTimeoutMs ?? 15_000, abandon: () => daemon.exited });
      if (ready) return registryHandle(daemon, host, url, dir, ownsDir, options.auth);
      await daemon.stop(1000);
      const tail = await readLogTail(logPath);
      if (attempt < 3 && tail.includes("address already in use")) continue;
      throw new RegistryStartError(
        `docker-registry did not answer GET ${url}/v2/ (config ${configPath})`,
        tail,
      );
    }
  } catch (error) {
    if (ownsDir) await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw error;
  }
}

function registryHandle(
  daemon: Daemon,
  host: string,
  url: string,
  dir: string,
  ownsDir: boolean,
  auth: RegistryCredentials | undefined,
): Registry {
  let stopping: Promise<void> | undefined;
  const stop = () =>
    stopping ??= (async () => {
      await daemon.stop();
      if (ownsDir) await Deno.remove(dir, { recursive: true }).catch(() => {});
    })();
  return {
    host,
    url,
    auth,
    logPath: daemon.logPath,
    dir,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

function registryConfig(
  dir: string,
  host: string,
  auth: boolean,
  proxyRemoteUrl: string | undefined,
): string {
  const lines = [
    "version: 0.1",
    "log:",
    "  level: warn",
    "  accesslog:",
    "    disabled: true",
    "storage:",
    "  filesystem:",
    `    rootdirectory: ${JSON.stringify(`${dir}/data`)}`,
    "  delete:",
    "    enabled: true",
    "http:",
    `  addr: ${host}`,
  ];
  if (proxyRemoteUrl) lines.push("proxy:", `  remoteurl: ${JSON.stringify(proxyRemoteUrl)}`);
  if (auth) {
    lines.push(
      "auth:",
      "  htpasswd:",
      "    realm: image-prefetcher-test",
      `    path: ${JSON.stringify(`${dir}/htpasswd`)}`,
    );
  }
  return lines.join("\n") + "\n";
}
