/**
 * A simulated cluster for cluster-wide waves: M containerds (each its own root and socket) whose
 * `hosts.toml` sends pulls of the origin's images to a real `docker-registry` in proxy mode (a
 * pull-through cache) with the origin as the fallback, the fault proxy in front of the origin
 * counting what it serves, and a second fault proxy in front of the same origin that the nodes
 * reach directly (no cache), for rate limits and for cases without a cache.
 *
 * @example
 * ```ts
 * import { startWavesCluster } from "./waves_cluster.ts";
 *
 * async function demo() {
 *   await using cluster = await startWavesCluster({ nodes: 3 });
 *   // images named cluster.origin.host/... go through the cache; cluster.direct.host/... do not
 * }
 * ```
 *
 * @module
 */
import {
  type Containerd,
  disposeAll,
  ensureDebianPackages,
  type FaultProxy,
  type Registry,
  STACK_PACKAGES,
  startContainerd,
  startFaultProxy,
  startRegistry,
} from "./stack/stack.ts";
import { jsonFetchArgs, type RunningProgram, spawnProgram } from "./prefetcher_process.ts";

/** Options for {@linkcode startWavesCluster}. */
export interface WavesClusterOptions {
  /** How many nodes (containerds). */
  nodes: number;
  /**
   * Start the pull-through cache and point every node at it.
   * @default {true}
   */
  cache?: boolean;
}

/** A running cluster; everything stops on `await using` disposal. */
export interface WavesCluster extends AsyncDisposable {
  /** The origin registry images are pushed to. */
  readonly registry: Registry;
  /** The fault proxy in front of the origin, reached through the cache: `origin.host/...`. */
  readonly origin: FaultProxy;
  /** The pull-through cache (proxy mode) in front of `origin`, when started. */
  readonly cache?: Registry;
  /** Another fault proxy in front of the origin, reached directly: `direct.host/...`. */
  readonly direct: FaultProxy;
  /** One containerd per node. */
  readonly nodes: readonly Containerd[];
  /**
   * Starts `fetch` on node `index` (0-based, named `node-<index + 1>`) with JSON logs and
   * `args` (flags, then images).
   */
  fetch(index: number, args: string[]): RunningProgram;
}

/** Starts the registries, proxies and nodes; stops what started when a step fails. */
export async function startWavesCluster(options: WavesClusterOptions): Promise<WavesCluster> {
  await ensureDebianPackages([...STACK_PACKAGES]);
  const started: AsyncDisposable[] = [];
  try {
    const registry = await startRegistry();
    started.push(registry);
    const origin = await startFaultProxy(registry.url);
    started.push(origin);
    const direct = await startFaultProxy(registry.url);
    started.push(direct);
    let cache: Registry | undefined;
    if (options.cache ?? true) {
      cache = await startRegistry({ proxyRemoteUrl: origin.url });
      started.push(cache);
    }
    const nodes: Containerd[] = [];
    for (let i = 0; i < options.nodes; i++) {
      const node = await startContainerd({ registryHosts: [direct.host] });
      started.push(node);
      nodes.push(node);
      if (cache) await node.setMirror(origin.host, cache.host);
      else await node.addRegistryHost(origin.host);
    }
    return {
      registry,
      origin,
      cache,
      direct,
      nodes,
      fetch: (index, args) =>
        spawnProgram(
          jsonFetchArgs(nodes[index].socket, "--node-name", `node-${index + 1}`, ...args),
        ),
      [Symbol.asyncDispose]: () => disposeAll(started),
    };
  } catch (error) {
    await disposeAll(started).catch(() => {});
    throw error;
  }
}
