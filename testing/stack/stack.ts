/**
 * The real-stack harness for end-to-end tests, benchmarks and the demo: a registry, a fault
 * proxy in front of it and a containerd that may pull from both, all on 127.0.0.1.
 *
 * @example
 * ```ts
 * import { startStack } from "./stack.ts";
 *
 * await using stack = await startStack();
 * const image = await stack.pushImage({ repository: "demo/app", layerBytes: 1 << 20 });
 * // prefetch image.reference(stack.proxy.host) through `unix://${stack.containerd.socket}`
 * ```
 *
 * @module
 */
import { type Containerd, startContainerd } from "./containerd.ts";
import {
  CONTAINERD_1_6,
  type ContainerdBinaries,
  type ContainerdVersion,
  obtainContainerd,
} from "./containerd_versions.ts";
import { type FaultProxy, startFaultProxy } from "./fault_proxy.ts";
import { type PushedImage, pushImage, type PushImageOptions } from "./images.ts";
import { type DebianPackage, ensureDebianPackages } from "./packages.ts";
import { type Registry, type RegistryCredentials, startRegistry } from "./registry.ts";

// The pieces, for benchmarks that assemble their own cluster (many containerds, one registry).
export {
  type Containerd,
  ContainerdStartError,
  startContainerd,
  type StartContainerdOptions,
} from "./containerd.ts";
export {
  type FailFirstFault,
  type FaultMatch,
  type FaultProxy,
  type Faults,
  type ProxyRequestRecord,
  type ResetFault,
  type StallFault,
  startFaultProxy,
  type StartFaultProxyOptions,
} from "./fault_proxy.ts";
export {
  ImagePushError,
  OCI_MANIFEST_MEDIA_TYPE,
  type PushedImage,
  pushImage,
  type PushImageOptions,
  type PushTarget,
} from "./images.ts";
export {
  CONTAINERD_1_6,
  CONTAINERD_1_7,
  CONTAINERD_2_1,
  CONTAINERD_VERSIONS,
  type ContainerdBinaries,
  type ContainerdVersion,
  ContainerdVersionError,
  obtainContainerd,
  testEachContainerd,
} from "./containerd_versions.ts";
export { DebianDownloadError } from "./debian_download.ts";
export {
  type DebianPackage,
  ensureDebianPackages,
  type EnsureDebianPackagesOptions,
  findOnPath,
  MissingPackageError,
  PackageInstallError,
} from "./packages.ts";
export {
  basicAuthorization,
  type Registry,
  type RegistryCredentials,
  RegistryStartError,
  startRegistry,
  type StartRegistryOptions,
} from "./registry.ts";
export { TokenBucket, type TokenBucketOptions } from "./token_bucket.ts";

/** The Debian packages the stack runs: containerd (with ctr) and the CNCF registry. */
export const STACK_PACKAGES: readonly DebianPackage[] = [
  { name: "containerd", binary: "containerd" },
  { name: "containerd", binary: "ctr" },
  { name: "docker-registry", binary: "docker-registry" },
];

/** Options for {@linkcode startStack}. */
export interface StartStackOptions {
  /** Make the registry require these credentials. @default {undefined, no auth} */
  registryAuth?: RegistryCredentials;
  /** Install missing packages with apt-get (as root). @default {true} */
  installPackages?: boolean;
  /**
   * The containerd version to run (see `CONTAINERD_VERSIONS`); obtained first if needed.
   *
   * @default {CONTAINERD_1_6, Debian 12's package}
   */
  containerd?: ContainerdVersion;
}

/** A running stack; everything is stopped and removed on `await using` disposal. */
export interface Stack extends AsyncDisposable {
  /** The registry images are pushed to. */
  readonly registry: Registry;
  /** The fault proxy in front of the registry; name images via `proxy.host` to go through it. */
  readonly proxy: FaultProxy;
  /** A containerd allowed to pull from `registry.host` and `proxy.host` over plain HTTP. */
  readonly containerd: Containerd;
  /** containerd's private directory (socket, root, log). */
  readonly workDir: string;
  /** The containerd version running. */
  readonly containerdVersion: ContainerdVersion;
  /** Its programs, for starting more containerds of the same version. */
  readonly containerdBinaries: ContainerdBinaries;
  /** Builds and pushes an image to the registry (with its credentials, not via the proxy). */
  pushImage(options: PushImageOptions): Promise<PushedImage>;
}

/** Thrown by {@linkcode disposeAll} when one or more components failed to stop. */
export class StackStopError extends AggregateError {
  /** Builds the error from the stop failures. */
  constructor(errors: unknown[]) {
    super(errors, `${errors.length} stack component(s) failed to stop; see .errors`);
    this.name = "StackStopError";
  }
}

/**
 * Ensures the packages, then starts a registry, a fault proxy in front of it and a containerd
 * that trusts both over plain HTTP. If a step fails, what was already started is stopped.
 */
export async function startStack(options: StartStackOptions = {}): Promise<Stack> {
  const install = options.installPackages ?? true;
  if (install) await ensureDebianPackages([...STACK_PACKAGES]);
  const containerdVersion = options.containerd ?? CONTAINERD_1_6;
  const binaries = await obtainContainerd(containerdVersion, { install });
  const started: AsyncDisposable[] = [];
  try {
    const registry = await startRegistry({ auth: options.registryAuth });
    started.push(registry);
    const proxy = await startFaultProxy(registry.url);
    started.push(proxy);
    const containerd = await startContainerd({
      registryHosts: [registry.host, proxy.host],
      binary: binaries.containerd,
      ctrBinary: binaries.ctr,
    });
    started.push(containerd);
    let disposing: Promise<void> | undefined;
    return {
      registry,
      proxy,
      containerd,
      workDir: containerd.dir,
      containerdVersion,
      containerdBinaries: binaries,
      pushImage: (pushOptions) => pushImage(registry, pushOptions),
      [Symbol.asyncDispose]: () => disposing ??= disposeAll(started),
    };
  } catch (error) {
    await disposeAll(started).catch(() => {});
    throw error;
  }
}

/**
 * Disposes `resources` in reverse order, continuing past failures, and throws a
 * {@linkcode StackStopError} with all of them at the end.
 */
export async function disposeAll(resources: AsyncDisposable[]): Promise<void> {
  const errors: unknown[] = [];
  for (const resource of [...resources].reverse()) {
    try {
      await resource[Symbol.asyncDispose]();
    } catch (error) {
      errors.push(error);
    }
  }
  if (errors.length > 0) throw new StackStopError(errors);
}
