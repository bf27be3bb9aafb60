/**
 * A simulated cluster pulling the same images from one registry: M nodes (M containerd
 * instances, each with its own root and socket, each with its own `fetch` process, all started
 * at once) for M = 1, 2, 4, 8, side by side in one run, in four cases:
 *
 * - (a) all at once, no cache: every node pulls from the registry (the "thundering herd");
 * - (b) all at once through a pull-through cache (`docker-registry` in proxy mode, each node's
 *   `hosts.toml` pointing at it with the registry as the fallback);
 * - (c) cluster-wide waves through the cache (`aggregate-metrics --waves --fanout 100`);
 * - (d) waves with `--max-nodes-pulling 2`, no cache.
 *
 * The registry sits behind the fault proxy with per-request latency and one bandwidth cap shared
 * by every node (the registry's egress). Printed per case and M: the time until every node is
 * done (and the first), the origin's bytes as a multiple of one image set, its requests, the peak
 * of open origin connections, and the CPU time by process.
 *
 * On a 2-core machine M `fetch` processes, M containerds, the cache, the coordinator and the proxy
 * compete for the CPU, so the times mix link and CPU limits; the CPU table says how busy the
 * machine was. Origin bytes, requests and connections do not depend on the CPU.
 *
 * Whole-process figures: a node is done when its `fetch` process exits (Deno start-up
 * included); each node's containerd, the cache and the coordinator start before the clock does.
 *
 * Run: deno run -A bench/cluster.ts [--nodes 1,2,4,8] [--cases a,b,c,d] [--images 12]
 *        [--min-mib 1] [--max-mib 6] [--latency-ms 50] [--bandwidth-mib 40] [--reps 3]
 */
import { parseArgs } from "node:util";
import {
  type Containerd,
  disposeAll,
  ensureDebianPackages,
  type Registry,
  STACK_PACKAGES,
  startContainerd,
  startFaultProxy,
  startRegistry,
} from "../testing/stack/stack.ts";
import { spawnProgram } from "../testing/prefetcher_process.ts";
import {
  type MetricsServerProcess,
  startMetricsServerProcess,
} from "../testing/metrics_server_process.ts";
import { busyFraction, sampleCpu } from "./cpu_load.ts";
import { pushImageSet } from "./image_set.ts";
import { cpuTimes, findPid } from "./process_cpu.ts";

const { values } = parseArgs({
  options: {
    nodes: { type: "string", default: "1,2,4,8" },
    cases: { type: "string", default: "a,b,c,d" },
    images: { type: "string", default: "12" },
    "min-mib": { type: "string", default: "1" },
    "max-mib": { type: "string", default: "6" },
    "latency-ms": { type: "string", default: "50" },
    "bandwidth-mib": { type: "string", default: "40" },
    reps: { type: "string", default: "3" },
  },
});
const nodeCounts = values.nodes.split(",").map(Number);
const count = Number(values.images);
const latencyMs = Number(values["latency-ms"]);
const bandwidthMiB = Number(values["bandwidth-mib"]);
const reps = Number(values.reps);
const MiB = 2 ** 20;

/** One way of pulling. */
interface Case {
  key: string;
  label: string;
  cache: boolean;
  /** `aggregate-metrics` flags for the coordinator, when waves are on. */
  waves?: string[];
}

const CASES: Case[] = [
  { key: "a", label: "(a) all at once, no cache", cache: false },
  { key: "b", label: "(b) all at once, cache", cache: true },
  { key: "c", label: "(c) waves, cache", cache: true, waves: ["--fanout", "100"] },
  { key: "d", label: "(d) waves, 2 pulling", cache: false, waves: ["--max-nodes-pulling", "2"] },
].filter((c) => values.cases.split(",").includes(c.key));

/** What one run of M nodes measured. */
interface Measurement {
  /** Until the last node's `fetch` exited. */
  allSeconds: number;
  /** Until the first node's `fetch` exited. */
  firstSeconds: number;
  bytes: number;
  requests: number;
  peakConnections: number;
  /** Whole machine, 0–1. */
  cpuBusy: number;
  /** CPU seconds of all containerds. */
  containerdCpu: number;
  /** CPU seconds of the origin registry and the cache. */
  registryCpu: number;
  /** CPU seconds of this process (the fault proxy). */
  proxyCpu: number;
  /** CPU seconds of all `fetch` processes. */
  fetchCpu: number;
  /** CPU seconds of the coordinator. */
  coordinatorCpu: number;
}

await ensureDebianPackages([...STACK_PACKAGES]);
await using registry = await startRegistry();
await using proxy = await startFaultProxy(registry.url);
const images = await pushImageSet(registry, {
  count,
  minMiB: Number(values["min-mib"]),
  maxMiB: Number(values["max-mib"]),
});
const setBytes = images.reduce((sum, image) => sum + image.sizeBytes, 0);
const references = images.map((image) => image.reference(proxy.host));
const registryPid = (await findPid(`${registry.dir}/config.yml`))!;
proxy.setFaults({ latencyMs, bandwidthBytesPerSecond: bandwidthMiB * MiB });

/** Fresh nodes (and a fresh cache) for one run, so nothing is cached from the last one. */
async function startNodes(m: number, kase: Case) {
  const started: AsyncDisposable[] = [];
  try {
    let cache: Registry | undefined;
    if (kase.cache) {
      cache = await startRegistry({ proxyRemoteUrl: proxy.url });
      started.push(cache);
    }
    const hosts = cache ? [] : [proxy.host];
    const nodes: Containerd[] = [];
    for (let i = 0; i < m; i++) {
      nodes.push(await startContainerd({ registryHosts: hosts }));
      started.push(nodes[i]);
      if (cache) await nodes[i].setMirror(proxy.host, cache.host);
    }
    let coordinator: MetricsServerProcess | undefined;
    if (kase.waves) {
      coordinator = await startMetricsServerProcess({ args: ["--waves", ...kase.waves] });
      started.push(coordinator);
    }
    return { nodes, cache, coordinator, started };
  } catch (error) {
    await disposeAll(started).catch(() => {});
    throw error;
  }
}

async function runCluster(m: number, kase: Case): Promise<Measurement> {
  const { nodes, cache, coordinator, started } = await startNodes(m, kase);
  try {
    // The previous cluster's connections close asynchronously; do not count them.
    for (let waited = 0; proxy.activeConnections > 0 && waited < 2_000; waited += 20) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const pids = await Promise.all(
      nodes.map(async (n) => (await findPid(`${n.dir}/config.toml`))!),
    );
    const cachePid = cache ? await findPid(`${cache.dir}/config.yml`) : undefined;
    const sum = (times: Array<{ self: number }>) => times.reduce((s, t) => s + t.self, 0);
    const sampleAll = async () => ({
      machine: await sampleCpu(),
      containerds: sum(await Promise.all(pids.map((pid) => cpuTimes(pid)))),
      registries: sum(
        await Promise.all([registryPid, ...cachePid ? [cachePid] : []].map((p) => cpuTimes(p))),
      ),
      coordinator: coordinator ? (await cpuTimes(coordinator.process.pid)).self : 0,
      self: await cpuTimes("self"),
    });
    proxy.resetCounters();
    const before = await sampleAll();
    const started = performance.now();
    const finishedAt = await Promise.all(nodes.map(async (node, i) => {
      const run = await spawnProgram(fetchArgs(node, i, coordinator)).finished;
      if (run.summary?.pulled !== references.length) {
        throw new Error(`node-${i + 1}: not every image was pulled:\n${run.stderr}`);
      }
      return performance.now() - started;
    }));
    const after = await sampleAll();
    return {
      allSeconds: Math.max(...finishedAt) / 1000,
      firstSeconds: Math.min(...finishedAt) / 1000,
      bytes: proxy.bytesServed,
      requests: proxy.requests.length,
      peakConnections: proxy.peakConnections,
      cpuBusy: busyFraction(before.machine, after.machine),
      containerdCpu: after.containerds - before.containerds,
      registryCpu: after.registries - before.registries,
      proxyCpu: after.self.self - before.self.self,
      // The fetch processes are this process's children that exited meanwhile.
      fetchCpu: after.self.children - before.self.children,
      coordinatorCpu: after.coordinator - before.coordinator,
    };
  } finally {
    await disposeAll(started);
  }
}

function fetchArgs(node: Containerd, i: number, coordinator?: MetricsServerProcess): string[] {
  return [
    "fetch",
    "--cri-socket",
    node.socket,
    "--node-name",
    `node-${i + 1}`,
    "--log-format",
    "json",
    ...(coordinator ? ["--metrics-endpoint", `127.0.0.1:${coordinator.grpcPort}`, "--waves"] : []),
    ...references,
  ];
}

// Repetitions outermost, so a slow spell of the machine hits every case and M alike.
const key = (kase: Case, m: number) => `${kase.key}${m}`;
const samples = new Map<string, Measurement[]>();
for (let rep = 0; rep < reps; rep++) {
  for (const kase of CASES) {
    for (const m of nodeCounts) {
      const list = samples.get(key(kase, m)) ?? [];
      list.push(await runCluster(m, kase));
      samples.set(key(kase, m), list);
    }
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
function medianOf(kase: Case, m: number): Measurement {
  const ms = samples.get(key(kase, m))!;
  return Object.fromEntries(
    (Object.keys(ms[0]) as (keyof Measurement)[]).map((k) => [k, median(ms.map((x) => x[k]))]),
  ) as unknown as Measurement;
}

printTables();

function printTables(): void {
  const table = (columns: Array<[string, number]>, rows: string[][]) => {
    for (const cells of [columns.map(([title]) => title), ...rows]) {
      console.log(
        cells.map((cell, i) => i === 0 ? cell.padEnd(columns[i][1]) : cell.padStart(columns[i][1]))
          .join(""),
      );
    }
  };
  console.log(
    `cluster: M nodes pull the same ${count} images (${values["min-mib"]}-${values["max-mib"]} ` +
      `MiB, 3 layers each, ${(setBytes / MiB).toFixed(1)} MiB per node) from one registry, ` +
      `${latencyMs} ms per request, ${bandwidthMiB} MiB/s shared by all nodes; median of ` +
      `${reps}; ${new Date().toISOString()}`,
  );
  const rows = CASES.flatMap((kase) => nodeCounts.map((m) => ({ kase, m, r: medianOf(kase, m) })));
  table(
    [
      ["case", 27],
      ["nodes", 6],
      ["all done s", 11],
      ["first s", 8],
      ["origin MiB", 11],
      [
        "x set",
        7,
      ],
      ["requests", 9],
      ["peak conns", 11],
    ],
    rows.map(({ kase, m, r }) => [
      kase.label,
      String(m),
      r.allSeconds.toFixed(2),
      r.firstSeconds.toFixed(2),
      (r.bytes / MiB).toFixed(1),
      `${(r.bytes / setBytes).toFixed(2)}x`,
      String(r.requests),
      String(r.peakConnections),
    ]),
  );
  console.log(
    "x set: origin bytes over one image set. peak conns: most origin connections open at once.",
  );
  console.log("\nCPU seconds while the nodes pulled, by process (2 cores = 2 CPU s per wall s):");
  table(
    [
      ["case", 27],
      ["nodes", 6],
      ["containerds", 12],
      ["registries", 11],
      ["proxy", 7],
      [
        "fetches",
        8,
      ],
      ["coordinator", 12],
      ["machine busy", 13],
    ],
    rows.map(({ kase, m, r }) => [
      kase.label,
      String(m),
      r.containerdCpu.toFixed(2),
      r.registryCpu.toFixed(2),
      r.proxyCpu.toFixed(2),
      r.fetchCpu.toFixed(2),
      r.coordinatorCpu.toFixed(2),
      `${Math.round(r.cpuBusy * 100)} %`,
    ]),
  );
}
