/**
 * Runs a private containerd (root, state, socket in one temporary directory) that pulls from
 * local registries over plain HTTP. Many can run at once, one per simulated node.
 *
 * @module
 */
import { type Daemon, readLogTail, spawnDaemon } from "./daemon.ts";
import { findOnPath } from "./packages.ts";
import { waitUntil } from "./wait_until.ts";

/** Options for {@linkcode startContainerd}. */
export interface StartContainerdOptions {
  /** `host:port` of registries to reach over plain HTTP (more via `addRegistryHost`). */
  registryHosts: string[];
  /** Path of the `containerd` program. @default {found on PATH} */
  binary?: string;
  /** Path of the `ctr` program. @default {found on PATH} */
  ctrBinary?: string;
  /** How long to wait for the socket to answer, in milliseconds. @default {20000} */
  startTimeoutMs?: number;
  /**
   * Parent of the private directory. Keep it short: the socket path must fit in 107 bytes.
   *
   * @default {"/tmp"}
   */
  parentDir?: string;
  /**
   * More plugins to leave out, e.g. `io.containerd.grpc.v1.content` for a runtime whose socket
   * serves CRI but not containerd's content service.
   *
   * @default {[]}
   */
  disabledPlugins?: string[];
  /**
   * The config layout to write: 2 for containerd 1.x, 3 for 2.x (CRI split into the
   * `io.containerd.cri.v1.images` and `io.containerd.cri.v1.runtime` plugins).
   *
   * @default {3 when `containerd --version` says 2.x or later, else 2}
   */
  configVersion?: 2 | 3;
  /**
   * containerd's own `image_pull_progress_timeout` (1.7 and later; 1.6 has no such setting): the
   * CRI plugin cancels a pull whose open downloads received nothing for this long.
   *
   * @default {containerd's default, 5m}
   */
  imagePullProgressTimeout?: string;
  /**
   * More directories of `hosts.toml` files, listed after the harness's own in `config_path` and
   * separated by ':', as a node may list `/etc/containerd/certs.d:/etc/docker/certs.d`.
   *
   * @default {[]}
   */
  extraRegistryConfigDirs?: string[];
}

/** A running containerd; stop it with `stop()` or `await using` (which also removes its files). */
export interface Containerd extends AsyncDisposable {
  /** The private directory holding config, root, state, socket and log. */
  readonly dir: string;
  /** Path of the gRPC socket, for CRI clients (`unix://` + socket). */
  readonly socket: string;
  /** containerd's root directory (content store, snapshots, metadata). */
  readonly root: string;
  /** containerd's log file (appended to across restarts). */
  readonly logPath: string;
  /** Whether the process is currently running. */
  readonly running: boolean;
  /** Stops the process: SIGTERM, then SIGKILL after 5 s. Keeps the files. */
  stop(): Promise<void>;
  /** Stops it if running, then starts it again with the same root and socket. */
  restart(): Promise<void>;
  /** Lets containerd pull from `host` (`host:port`) over plain HTTP from the next pull on. */
  addRegistryHost(host: string): Promise<void>;
  /**
   * Makes containerd pull `host`'s images from `mirror` first (a pull-through cache), with `host`
   * itself as the fallback, both over plain HTTP, as a node's `hosts.toml` would.
   */
  setMirror(host: string, mirror: string): Promise<void>;
  /** Image references in the `k8s.io` namespace, via `ctr` (for debugging). */
  listImages(): Promise<string[]>;
}

/** Thrown when containerd does not come up; the message carries the tail of its log. */
export class ContainerdStartError extends Error {
  /** Builds the error; `logTail` is appended to `message`. */
  constructor(message: string, logTail: string) {
    super(`${message}\nLast containerd log lines:\n${logTail}`);
    this.name = "ContainerdStartError";
  }
}

/**
 * Writes a config and starts `containerd` in a fresh directory under `/tmp`, waiting until
 * `ctr version` gets an answer over its socket.
 *
 * @example
 * ```ts
 * import { startContainerd } from "./containerd.ts";
 * import { startRegistry } from "./registry.ts";
 *
 * await using registry = await startRegistry();
 * await using containerd = await startContainerd({ registryHosts: [registry.host] });
 * // pull through CRI at `unix://${containerd.socket}`
 * ```
 */
export async function startContainerd(options: StartContainerdOptions): Promise<Containerd> {
  const binary = options.binary ?? await findOnPath("containerd");
  const ctr = options.ctrBinary ?? await findOnPath("ctr");
  if (!binary || !ctr) {
    throw new ContainerdStartError(
      "containerd/ctr are not installed; run ensureDebianPackages() or apt-get install containerd",
      "",
    );
  }
  const dir = await Deno.makeTempDir({ dir: options.parentDir ?? "/tmp", prefix: "ipf-" });
  const socket = `${dir}/containerd.sock`;
  const root = `${dir}/root`;
  const logPath = `${dir}/containerd.log`;
  const configPath = `${dir}/config.toml`;
  const timeoutMs = options.startTimeoutMs ?? 20_000;
  if (new TextEncoder().encode(socket + ".ttrpc").byteLength > 107) {
    await Deno.remove(dir, { recursive: true });
    throw new ContainerdStartError(
      `socket path ${socket} is too long; use a shorter parentDir`,
      "",
    );
  }

  const addRegistryHost = async (host: string) => {
    await Deno.mkdir(`${dir}/certs.d/${host}`, { recursive: true });
    await Deno.writeTextFile(
      `${dir}/certs.d/${host}/hosts.toml`,
      `server = "http://${host}"\n\n[host."http://${host}"]\n  capabilities = ["pull", "resolve"]\n`,
    );
  };

  let daemon: Daemon | undefined;
  const start = async () => {
    // Shims are looked up on PATH: take them from the same package as the daemon.
    const path = `${binary.replace(/\/[^/]*$/, "")}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`;
    daemon = spawnDaemon(binary, ["--config", configPath], logPath, {
      cwd: dir,
      env: { PATH: path },
    });
    const current = daemon;
    const ready = await waitUntil(
      async () => (await runCtr(ctr, socket, ["version"])).success,
      { timeoutMs, intervalMs: 100, abandon: () => current.exited },
    );
    if (!ready) {
      await current.stop(1000);
      throw new ContainerdStartError(
        `containerd (config ${configPath}) did not answer on ${socket} within ${timeoutMs} ms`,
        await readLogTail(logPath),
      );
    }
  };
  const stop = async () => {
    await daemon?.stop();
  };

  try {
    const configVersion = options.configVersion ?? await detectConfigVersion(binary);
    await Deno.writeTextFile(
      configPath,
      containerdConfig(configVersion, dir, socket, root, options),
    );
    for (const host of options.registryHosts) await addRegistryHost(host);
    await start();
  } catch (error) {
    await removeDir(dir);
    throw error;
  }

  let disposed: Promise<void> | undefined;
  return {
    dir,
    socket,
    root,
    logPath,
    get running() {
      return daemon !== undefined && !daemon.exited;
    },
    stop,
    async restart() {
      await stop();
      await start();
    },
    addRegistryHost,
    async setMirror(host: string, mirror: string) {
      await Deno.mkdir(`${dir}/certs.d/${host}`, { recursive: true });
      await Deno.writeTextFile(
        `${dir}/certs.d/${host}/hosts.toml`,
        `server = "http://${host}"\n\n[host."http://${mirror}"]\n  capabilities = ["pull", "resolve"]\n`,
      );
    },
    async listImages() {
      const output = await runCtr(ctr, socket, ["-n", "k8s.io", "images", "ls", "-q"]);
      return new TextDecoder().decode(output.stdout).split("\n").filter((line) => line !== "");
    },
    [Symbol.asyncDispose]() {
      return disposed ??= stop().then(() => removeDir(dir));
    },
  };
}

function runCtr(ctr: string, socket: string, args: string[]): Promise<Deno.CommandOutput> {
  return new Deno.Command(ctr, {
    args: ["--address", socket, "--timeout", "2s", ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
}

/** 3 for a containerd 2.x or later, else 2; read from `containerd --version`. */
async function detectConfigVersion(binary: string): Promise<2 | 3> {
  const output = await new Deno.Command(binary, { args: ["--version"], stdin: "null" }).output();
  // e.g. "containerd github.com/containerd/containerd/v2 2.1.9+unknown"
  const version = new TextDecoder().decode(output.stdout).trim().split(/\s+/)[2] ?? "";
  const major = Number(/^v?(\d+)\./.exec(version)?.[1]);
  if (!output.success || !Number.isInteger(major)) {
    throw new ContainerdStartError(
      `cannot tell the version of ${binary} from its --version output; pass configVersion`,
      new TextDecoder().decode(output.stderr),
    );
  }
  return major >= 2 ? 3 : 2;
}

/** Snapshotters this harness never uses; skipping them keeps start-up quick and the log quiet. */
const UNUSED_SNAPSHOTTERS = ["aufs", "btrfs", "devmapper", "zfs"];
/** Snapshotters that containerd 2.x adds and this harness does not use either. */
const UNUSED_SNAPSHOTTERS_V3 = ["blockfile", "erofs"];

function containerdConfig(
  configVersion: 2 | 3,
  dir: string,
  socket: string,
  root: string,
  options: StartContainerdOptions,
): string {
  const q = JSON.stringify;
  const disabled = [
    ...UNUSED_SNAPSHOTTERS,
    ...(configVersion === 3 ? UNUSED_SNAPSHOTTERS_V3 : []),
  ].map((name) => `io.containerd.snapshotter.v1.${name}`).concat(options.disabledPlugins ?? []);
  const cri: CriSettings = {
    configPath: [`${dir}/certs.d`, ...options.extraRegistryConfigDirs ?? []].join(":"),
    imagePullProgressTimeout: options.imagePullProgressTimeout,
  };
  return `version = ${configVersion}
root = ${q(root)}
state = ${q(`${dir}/state`)}
disabled_plugins = [
${disabled.map((plugin) => `  ${q(plugin)},\n`).join("")}]

[grpc]
  address = ${q(socket)}

[ttrpc]
  address = ${q(`${socket}.ttrpc`)}

[debug]
  address = ""

[metrics]
  address = ""
${configVersion === 3 ? criConfigV3(cri) : criConfigV2(cri)}`;
}

/** What the harness sets in the CRI plugin's config. */
interface CriSettings {
  /** `config_path`: directories of `hosts.toml` files, separated by ':'. */
  configPath: string;
  /** `image_pull_progress_timeout`, when set. */
  imagePullProgressTimeout?: string;
}

function progressTimeoutLine(cri: CriSettings, indent: string): string {
  return cri.imagePullProgressTimeout === undefined
    ? ""
    : `${indent}image_pull_progress_timeout = ${JSON.stringify(cri.imagePullProgressTimeout)}\n`;
}

/** containerd 1.x: one CRI plugin, which reads every directory `config_path` lists. */
function criConfigV2(cri: CriSettings): string {
  return `
[plugins."io.containerd.grpc.v1.cri"]
${progressTimeoutLine(cri, "  ")}\
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = ${JSON.stringify(cri.configPath)}
`;
}

/**
 * containerd 2.x: CRI's image part is its own plugin and pulls through the transfer service,
 * which unpacks with the snapshotter of its `unpack_config` (overlayfs unless told otherwise),
 * and reads `config_path` as one directory, ':' and all.
 */
function criConfigV3(cri: CriSettings): string {
  return `
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "native"
${progressTimeoutLine(cri, "  ")}\
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = ${JSON.stringify(cri.configPath)}

[plugins."io.containerd.transfer.v1.local"]
  [[plugins."io.containerd.transfer.v1.local".unpack_config]]
    platform = ${JSON.stringify(`linux/${Deno.build.arch === "aarch64" ? "arm64" : "amd64"}`)}
    snapshotter = "native"
`;
}

/**
 * Removes `dir` recursively, first unmounting anything still mounted below it (a containerd
 * killed mid-unpack can leave a temporary bind mount behind).
 */
async function removeDir(dir: string): Promise<void> {
  let mounts: string[] = [];
  try {
    mounts = (await Deno.readTextFile("/proc/self/mounts")).split("\n")
      .map((line) => line.split(" ")[1]?.replace(/\\040/g, " "))
      .filter((point): point is string => point !== undefined && point.startsWith(`${dir}/`))
      .sort((a, b) => b.length - a.length);
  } catch {
    // no /proc: nothing we can unmount anyway
  }
  for (const point of mounts) {
    await new Deno.Command("umount", { args: ["-l", point], stdout: "null", stderr: "null" })
      .output().catch(() => {});
  }
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}
