/**
 * Gets a Debian package from another suite (e.g. Debian 13 "trixie" on a Debian 12 machine)
 * without installing it: `apt-get download` with a private sources list, package lists and cache,
 * then `dpkg -x` into a cache directory. The system's apt sources, package lists and installed
 * packages are left untouched, so nothing on the machine is upgraded.
 *
 * @module
 */
import { findOnPath } from "./packages.ts";

/** Which package to get, from where. */
export interface DebianDownload {
  /** Package name, e.g. `containerd`. */
  name: string;
  /** The suite to take it from, e.g. `trixie`. */
  suite: string;
  /**
   * The start of the Debian version wanted, e.g. `1.7.24~` or `2.1.9+` (upstream 1.7.24 or 2.1.9,
   * any Debian revision). A suite that offers another version is an error that says so.
   */
  versionPrefix: string;
}

/** Options for {@linkcode downloadDebianPackage}. */
export interface DownloadDebianPackageOptions {
  /**
   * Where unpacked packages and the private apt state are kept between runs.
   *
   * @default {"$XDG_CACHE_HOME/image-prefetcher", else "$HOME/.cache/image-prefetcher"}
   */
  cacheDir?: string;
  /** The Debian mirror. @default {"http://deb.debian.org/debian"} */
  mirror?: string;
}

/** Thrown when the package cannot be had; the message says what failed and what to do. */
export class DebianDownloadError extends Error {
  /** Builds the error from a sentence a user can act on. */
  constructor(message: string) {
    super(message);
    this.name = "DebianDownloadError";
  }
}

/** The default cache directory, see {@linkcode DownloadDebianPackageOptions.cacheDir}. */
export function defaultCacheDir(): string {
  const xdg = Deno.env.get("XDG_CACHE_HOME");
  if (xdg) return `${xdg}/image-prefetcher`;
  return `${Deno.env.get("HOME") ?? "/root"}/.cache/image-prefetcher`;
}

let queue: Promise<unknown> = Promise.resolve();

/**
 * Returns the directory the package is unpacked in (its files under their installed paths, e.g.
 * `<dir>/usr/bin/containerd`), downloading and unpacking it the first time. Calls in one process
 * run one after another; processes racing for the same package each unpack into a temporary
 * directory and the first rename wins.
 *
 * @throws {DebianDownloadError} when apt-get or dpkg is missing, the suite cannot be reached or
 * does not offer the version wanted.
 *
 * @example
 * ```ts
 * import { downloadDebianPackage } from "./debian_download.ts";
 *
 * async function trixieContainerd(): Promise<string> {
 *   const dir = await downloadDebianPackage({
 *     name: "containerd",
 *     suite: "trixie",
 *     versionPrefix: "1.7.24~",
 *   });
 *   return `${dir}/usr/bin/containerd`;
 * }
 * ```
 */
export function downloadDebianPackage(
  pkg: DebianDownload,
  options: DownloadDebianPackageOptions = {},
): Promise<string> {
  const run = queue.then(() => downloadNow(pkg, options));
  queue = run.catch(() => {});
  return run;
}

async function downloadNow(
  pkg: DebianDownload,
  options: DownloadDebianPackageOptions,
): Promise<string> {
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const unpacked = `${cacheDir}/${pkg.suite}/${pkg.name}-${pkg.versionPrefix.replace(/[~+]$/, "")}`;
  if (await exists(`${unpacked}/.complete`)) return unpacked;
  for (const tool of ["apt-get", "dpkg-deb"]) {
    if (!(await findOnPath(tool))) {
      throw new DebianDownloadError(
        `Cannot get ${describe(pkg)}: '${tool}' is not installed. Run the tests on Debian, ` +
          `or unpack that package yourself into ${unpacked} (and create ${unpacked}/.complete).`,
      );
    }
  }
  const aptDir = `${cacheDir}/apt-${pkg.suite}`;
  const apt = await privateApt(aptDir, pkg.suite, options.mirror ?? "http://deb.debian.org/debian");
  // Without Error-Mode=any, apt-get update exits 0 when it could not reach the mirror.
  await apt.run(
    ["-o", "APT::Update::Error-Mode=any", "update"],
    `could not read the package lists of ${pkg.suite}`,
  );
  const version = await apt.candidate(pkg.name);
  if (!version?.startsWith(pkg.versionPrefix)) {
    throw new DebianDownloadError(
      `Cannot get ${describe(pkg)}: the ${pkg.suite} suite offers ` +
        `${version ? `version ${version}` : "no such package"}. Update the version list in ` +
        "testing/stack/containerd_versions.ts to what the suite has now.",
    );
  }
  await Deno.mkdir(`${cacheDir}/${pkg.suite}`, { recursive: true });
  const work = await Deno.makeTempDir({ dir: cacheDir, prefix: `.${pkg.name}-` });
  try {
    await apt.run(["download", `${pkg.name}=${version}`], `could not download it`, work);
    const debs = [...Deno.readDirSync(work)].filter((e) => e.name.endsWith(".deb"));
    if (debs.length !== 1) {
      throw new DebianDownloadError(`apt-get download left no .deb in ${work}`);
    }
    await run("dpkg-deb", ["-x", `${work}/${debs[0].name}`, `${work}/root`], pkg);
    await Deno.writeTextFile(`${work}/root/.complete`, `${pkg.name} ${version}\n`);
    await Deno.rename(`${work}/root`, unpacked).catch(async (error) => {
      if (!(await exists(`${unpacked}/.complete`))) throw error;
    });
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
  return unpacked;
}

interface PrivateApt {
  run(args: string[], what: string, cwd?: string): Promise<string>;
  candidate(name: string): Promise<string | undefined>;
}

/** apt-get and apt-cache that see only `suite`, with their own lists and cache under `dir`. */
async function privateApt(dir: string, suite: string, mirror: string): Promise<PrivateApt> {
  await Deno.mkdir(`${dir}/lists/partial`, { recursive: true });
  await Deno.mkdir(`${dir}/cache/archives/partial`, { recursive: true });
  await Deno.mkdir(`${dir}/sources.list.d`, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/sources.list.d/${suite}.sources`,
    `Types: deb\nURIs: ${mirror}\nSuites: ${suite}\nComponents: main\n` +
      "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
  );
  const aptOptions = [
    `Dir::Etc::sourcelist=/dev/null`,
    `Dir::Etc::sourceparts=${dir}/sources.list.d`,
    `Dir::State::lists=${dir}/lists`,
    `Dir::State::status=/dev/null`,
    `Dir::Cache=${dir}/cache`,
    // apt's _apt user may not write into the cache; downloads then run as the caller.
    "APT::Sandbox::User=root",
  ].flatMap((option) => ["-o", option]);
  const label = { name: `apt (${suite})`, suite, versionPrefix: "" };
  return {
    run: async (args, what, cwd) => {
      try {
        return await run("apt-get", [...aptOptions, ...args], label, cwd);
      } catch (error) {
        throw new DebianDownloadError(
          `${what} from ${mirror} (suite ${suite}): ${(error as Error).message}. ` +
            `The tests need Debian's mirror (${mirror}) to be reachable; check the network or ` +
            "a proxy (Acquire::http::Proxy).",
        );
      }
    },
    candidate: async (name) => {
      const policy = await run("apt-cache", [...aptOptions, "policy", name], label);
      return /Candidate:\s*(\S+)/.exec(policy)?.[1]?.replace("(none)", "") || undefined;
    },
  };
}

async function run(
  program: string,
  args: string[],
  pkg: DebianDownload,
  cwd?: string,
): Promise<string> {
  const output = await new Deno.Command(program, {
    args,
    cwd,
    env: { DEBIAN_FRONTEND: "noninteractive" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  if (output.success) return text;
  const tail = text.trimEnd().split("\n").slice(-10).join("\n");
  throw new DebianDownloadError(
    `'${program} ${args.filter((a, i) => a !== "-o" && args[i - 1] !== "-o").join(" ")}' ` +
      `for ${describe(pkg)} ` +
      `failed with exit code ${output.code}:\n${tail}`,
  );
}

function describe(pkg: DebianDownload): string {
  return `${pkg.name} ${pkg.versionPrefix}* from Debian ${pkg.suite}`;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}
