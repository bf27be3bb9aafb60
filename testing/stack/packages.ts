/**
 * Makes sure the Debian packages the real-stack harness runs (containerd, docker-registry) are
 * installed, installing them with apt-get when we are root.
 *
 * @module
 */

/** A Debian package and the program it provides, which tells us whether it is installed. */
export interface DebianPackage {
  /** Package name as apt-get knows it, e.g. `containerd`. */
  name: string;
  /** A program the package puts on `PATH`, e.g. `containerd`. */
  binary: string;
  /**
   * A Python module the package provides (e.g. `grpc` for `python3-grpcio`); when set, the
   * package counts as installed only when Debian's interpreter, `/usr/bin/<binary>`, can import
   * it (another `python3` earlier on `PATH`, e.g. pyenv's, does not see Debian's packages).
   */
  pythonModule?: string;
}

/** Options for {@linkcode ensureDebianPackages}. */
export interface EnsureDebianPackagesOptions {
  /**
   * How many trailing lines of apt-get output an {@linkcode PackageInstallError} carries.
   *
   * @default {40}
   */
  outputTailLines?: number;
}

/** Thrown when a package is missing and cannot be installed by us (not root, or no apt-get). */
export class MissingPackageError extends Error {
  /** Names of the packages that are missing. */
  readonly packages: string[];

  /** Builds the error for the missing `packages`; `reason` says why we could not install them. */
  constructor(packages: string[], reason: string) {
    super(
      `Missing Debian package(s) ${packages.join(", ")} (${reason}). Install them with: ` +
        `sudo apt-get update && sudo apt-get install -y ${packages.join(" ")}`,
    );
    this.name = "MissingPackageError";
    this.packages = packages;
  }
}

/** Thrown when `apt-get` ran but failed; the message ends with the tail of its output. */
export class PackageInstallError extends Error {
  /** The apt-get command line that failed. */
  readonly command: string;

  /** Builds the error for the failed `command`, quoting `outputTail`. */
  constructor(command: string, code: number, outputTail: string) {
    super(
      `'${command}' failed with exit code ${code}; fix the apt sources or install the ` +
        `packages by hand. Last output:\n${outputTail}`,
    );
    this.name = "PackageInstallError";
    this.command = command;
  }
}

let queue: Promise<unknown> = Promise.resolve();
let aptUpdated = false;

/**
 * Ensures that every package's `binary` is on `PATH`, running `apt-get update` (once per process)
 * and `apt-get install -y` for the missing ones. Concurrent calls run one after another.
 *
 * @throws {MissingPackageError} when something is missing and we are not root or have no apt-get.
 * @throws {PackageInstallError} when apt-get fails.
 *
 * @example
 * ```ts
 * await ensureDebianPackages([{ name: "containerd", binary: "containerd" }]);
 * ```
 */
export function ensureDebianPackages(
  packages: DebianPackage[],
  options: EnsureDebianPackagesOptions = {},
): Promise<void> {
  const run = queue.then(() => ensureNow(packages, options));
  queue = run.catch(() => {});
  return run;
}

async function ensureNow(
  packages: DebianPackage[],
  options: EnsureDebianPackagesOptions,
): Promise<void> {
  const missing: string[] = [];
  for (const pkg of packages) {
    if (!(await isInstalled(pkg)) && !missing.includes(pkg.name)) missing.push(pkg.name);
  }
  if (missing.length === 0) return;
  if (Deno.uid() !== 0) throw new MissingPackageError(missing, "not running as root");
  if (!(await findOnPath("apt-get"))) throw new MissingPackageError(missing, "apt-get not found");
  const tail = options.outputTailLines ?? 40;
  if (!aptUpdated) {
    await aptGet(["update"], tail);
    aptUpdated = true;
  }
  await aptGet(["install", "-y", "--no-install-recommends", ...missing], tail);
  const stillMissing = packages.filter((p) => missing.includes(p.name));
  for (const pkg of stillMissing) {
    if (!(await isInstalled(pkg))) {
      throw new MissingPackageError(
        [pkg.name],
        pkg.pythonModule
          ? `installed, but /usr/bin/${pkg.binary} still cannot import ${pkg.pythonModule}`
          : `installed, but '${pkg.binary}' is still not on PATH=${Deno.env.get("PATH") ?? ""}`,
      );
    }
  }
}

async function isInstalled(pkg: DebianPackage): Promise<boolean> {
  if (!pkg.pythonModule) return (await findOnPath(pkg.binary)) !== undefined;
  const interpreter = `/usr/bin/${pkg.binary}`;
  if (!(await Deno.stat(interpreter).catch(() => undefined))) return false;
  const output = await new Deno.Command(interpreter, {
    args: ["-c", `import ${pkg.pythonModule}`],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).output();
  return output.success;
}

async function aptGet(args: string[], tailLines: number): Promise<void> {
  const output = await new Deno.Command("apt-get", {
    args,
    env: { DEBIAN_FRONTEND: "noninteractive" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (output.success) return;
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  const tail = text.trimEnd().split("\n").slice(-tailLines).join("\n");
  throw new PackageInstallError(`apt-get ${args.join(" ")}`, output.code, tail);
}

/** Returns the absolute path of `binary` if an executable of that name is on `PATH`. */
export async function findOnPath(binary: string): Promise<string | undefined> {
  const dirs = (Deno.env.get("PATH") ?? "/usr/local/bin:/usr/bin:/bin").split(":");
  // Root's PATH normally has the sbin directories, but a CI runner's may not; runc lives there.
  for (const dir of [...dirs, "/usr/local/sbin", "/usr/sbin", "/sbin"]) {
    if (!dir) continue;
    try {
      const info = await Deno.stat(`${dir}/${binary}`);
      if (info.isFile && ((info.mode ?? 0) & 0o111) !== 0) return `${dir}/${binary}`;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}
