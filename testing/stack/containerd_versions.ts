/**
 * The containerd versions the end-to-end tests run against, and how each is obtained: 1.6.20 is
 * Debian 12's `containerd` package, installed with apt-get; 1.7.24 is Debian 13 ("trixie")'s and
 * 2.1.9 Debian 14 ("forky")'s, each downloaded and unpacked into a cache without installing it
 * (their binaries need only glibc ≥ 2.34 and run on Debian 12 with the same `runc`).
 *
 * Every end-to-end test that exercises the runtime runs once per entry of
 * {@linkcode CONTAINERD_VERSIONS}, with the version in the test's name, so one version can be
 * picked with `deno test --filter "containerd 1.7.24"`.
 *
 * @example
 * ```ts
 * import { testEachContainerd } from "./containerd_versions.ts";
 * import { startStack } from "./stack.ts";
 *
 * // Registers one test per version; call it at the top level of a *_test.ts file.
 * function registerTests(): void {
 *   testEachContainerd("fetch works", async (_t, containerd) => {
 *     await using stack = await startStack({ containerd });
 *     // … run fetch against `unix://${stack.containerd.socket}`
 *   });
 * }
 * ```
 *
 * @module
 */
import { downloadDebianPackage, type DownloadDebianPackageOptions } from "./debian_download.ts";
import { ensureDebianPackages, findOnPath, MissingPackageError } from "./packages.ts";

/** One containerd version under test and where its binaries come from. */
export interface ContainerdVersion {
  /** The upstream version, e.g. `1.7.24`; it names the tests that run against it. */
  readonly version: string;
  /**
   * `installed`: the machine's Debian package (apt-get install if missing);
   * `download`: a package of another Debian suite, unpacked into a cache, never installed;
   * `debianVersionPrefix` is how that suite's version starts, e.g. `1.7.24~` (`1.7.24~ds1-6`) or
   * `2.1.9+` (`2.1.9+ds1-5`).
   */
  readonly source:
    | { readonly kind: "installed"; readonly package: string }
    | {
      readonly kind: "download";
      readonly package: string;
      readonly suite: string;
      readonly debianVersionPrefix: string;
    };
}

/** Debian 12 ("bookworm")'s containerd, installed as a package. */
export const CONTAINERD_1_6: ContainerdVersion = {
  version: "1.6.20",
  source: { kind: "installed", package: "containerd" },
};

/** Debian 13 ("trixie")'s containerd, unpacked into a cache directory. */
export const CONTAINERD_1_7: ContainerdVersion = {
  version: "1.7.24",
  source: {
    kind: "download",
    package: "containerd",
    suite: "trixie",
    debianVersionPrefix: "1.7.24~",
  },
};

/**
 * Debian 14 ("forky")'s containerd, unpacked into a cache directory. Its CRI plugin pulls through
 * containerd's transfer service and reads a version-3 config (see `containerd.ts`).
 */
export const CONTAINERD_2_1: ContainerdVersion = {
  version: "2.1.9",
  source: {
    kind: "download",
    package: "containerd",
    suite: "forky",
    debianVersionPrefix: "2.1.9+",
  },
};

/** Every version the end-to-end tests run against, oldest first. */
export const CONTAINERD_VERSIONS: readonly ContainerdVersion[] = [
  CONTAINERD_1_6,
  CONTAINERD_1_7,
  CONTAINERD_2_1,
];

/** Paths of one version's programs. */
export interface ContainerdBinaries {
  /** The `containerd` daemon. */
  containerd: string;
  /** Its `ctr` client. */
  ctr: string;
}

/** Thrown when the programs found are not the version asked for. */
export class ContainerdVersionError extends Error {
  /** Builds the error from a sentence a user can act on. */
  constructor(message: string) {
    super(message);
    this.name = "ContainerdVersionError";
  }
}

/**
 * Returns the programs of `version`, installing (apt-get, as root) or downloading them first when
 * needed, and checks that `containerd --version` is the version asked for. `runc` comes from
 * Debian's package either way.
 *
 * @throws {MissingPackageError} or {PackageInstallError} when a package cannot be installed.
 * @throws {DebianDownloadError} when a package of another suite cannot be downloaded.
 * @throws {ContainerdVersionError} when the programs are another version.
 */
export async function obtainContainerd(
  version: ContainerdVersion,
  options: DownloadDebianPackageOptions & { install?: boolean } = {},
): Promise<ContainerdBinaries> {
  if (options.install ?? true) {
    await ensureDebianPackages([
      { name: "containerd", binary: "containerd" },
      { name: "runc", binary: "runc" },
    ]);
  }
  let binaries: ContainerdBinaries;
  if (version.source.kind === "installed") {
    const containerd = await findOnPath("containerd");
    const ctr = await findOnPath("ctr");
    if (!containerd || !ctr) {
      throw new MissingPackageError([version.source.package], "containerd or ctr is not on PATH");
    }
    binaries = { containerd, ctr };
  } else {
    const dir = await downloadDebianPackage({
      name: version.source.package,
      suite: version.source.suite,
      versionPrefix: version.source.debianVersionPrefix,
    }, options);
    binaries = { containerd: `${dir}/usr/bin/containerd`, ctr: `${dir}/usr/bin/ctr` };
  }
  await checkVersion(binaries.containerd, version);
  return binaries;
}

async function checkVersion(binary: string, version: ContainerdVersion): Promise<void> {
  const output = await new Deno.Command(binary, { args: ["--version"], stdin: "null" }).output()
    .catch((error) => {
      throw new ContainerdVersionError(`Cannot run ${binary} --version: ${error.message}`);
    });
  const text = new TextDecoder().decode(output.stdout).trim();
  // e.g. "containerd github.com/containerd/containerd 1.7.24~ds1 1.7.24~ds1-6+deb13u1", or
  // "containerd github.com/containerd/containerd/v2 2.1.9+unknown "
  const found = text.split(/\s+/)[2]?.replace(/^v/, "").replace(/[~+-].*$/, "");
  if (found !== version.version) {
    const fix = version.source.kind === "installed"
      ? "install Debian 12's containerd package, or change CONTAINERD_VERSIONS in " +
        "testing/stack/containerd_versions.ts"
      : `remove ${binary.replace(/\/usr\/bin\/containerd$/, "")} so that it is downloaded again`;
    throw new ContainerdVersionError(
      `${binary} is containerd ${found ?? `"${text}"`}, not ${version.version}; ${fix}.`,
    );
  }
}

/** A test as `Deno.test` takes it, whose function also gets the containerd version. */
export interface ContainerdTestDefinition extends Omit<Deno.TestDefinition, "fn"> {
  /** The test; pass `containerd` to `startStack`. */
  fn(t: Deno.TestContext, containerd: ContainerdVersion): void | Promise<void>;
}

/**
 * Registers one test per entry of {@linkcode CONTAINERD_VERSIONS}, named
 * `<name> (containerd <version>)`; its function gets the version to pass to `startStack`.
 */
export function testEachContainerd(
  name: string,
  fn: ContainerdTestDefinition["fn"],
): void;
/** Same, with `Deno.test`'s options (sanitizers, …) in one definition. */
export function testEachContainerd(definition: ContainerdTestDefinition): void;
export function testEachContainerd(
  nameOrDefinition: string | ContainerdTestDefinition,
  fn?: ContainerdTestDefinition["fn"],
): void {
  const definition = typeof nameOrDefinition === "string"
    ? { name: nameOrDefinition, fn: fn! }
    : nameOrDefinition;
  for (const containerd of CONTAINERD_VERSIONS) {
    Deno.test({
      ...definition,
      name: `${definition.name} (containerd ${containerd.version})`,
      fn: (t) => definition.fn(t, containerd),
    });
  }
}
