/**
 * A simulated cluster pulling the same images from one registry: M nodes (M containerd
 * instances, each with its own root and socket, each with its own `fetch` process, all started
 * at once) for M = 1, 2, 4, 8, side by side in one run. The registry sits behind the fault proxy
 * with per-request latency and one bandwidth cap shared by every node: the registry's egress,
 * or the cluster's shared uplink.
 *
 * Printed for each M: the time until every node is done (and the first), the registry's bytes
 * and requests, the peak of open registry connections, and the time the bytes need at the cap.
 * This is the "thundering herd" every node's `fetch` makes when a DaemonSet starts everywhere
 * at once: each node pulls every byte itself, so the registry serves M times the image set.
 *
 * On a 2-core machine M `fetch` processes, M containerds and the proxy compete for the CPU, so
 * the times mix link and CPU limits; the CPU table says how busy the machine was. Registry bytes,
 * requests and connections do not depend on the CPU: they are the honest herd figures.
 *
 * Whole-process figures: a node is done when its `fetch` process exits (Deno start-up
 * included); each node's containerd starts before the clock does.
 *
 * Run: deno run -A bench/cluster.ts [--nodes 1,2,4,8] [--images 12] [--min-mib 1]
 *        [--max-mib 6] [--latency-ms 50] [--bandwidth-mib 40] [--reps 3]
 */
import { parseArgs } from "node:util";
import {
  type Containerd,
  disposeAll,
  ensureDebianPackages,
  STACK_PACKAGES,
  startContainerd,
  startFaultProxy,
  startRegistry,
} from "../testing/stack/stack.ts";
import { spawnProgram } from "../testing/prefetcher_process.ts";
import { busyFraction, sampleCpu } from "./cpu_load.ts";
import { pushImageSet } from "./image_set.ts";
import { cpuTimes, findPid } from "./process_cpu.ts";

const { values } = parseArgs({
  options: {
    nodes: { type: "string", default: "1,2,4,8" },
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

/** What one run of M nodes measured. */
interface Measurement {
  /** Until the last node's `fetch` exited. */
  allSeconds: number;
  /** Until the first node's `fetch` exited. */
  firstSeconds: number;
  bytes: number;
  requests: number;
  connections: number;
  peakConnections: number;
  /** Whole machine, 0–1. */
  cpuBusy: number;
  /** CPU seconds of all containerds. */
  containerdCpu: number;
  /** CPU seconds of the registry. */
  registryCpu: number;
  /** CPU seconds of this process (the fault proxy). */
  proxyCpu: number;
  /** CPU seconds of all `fetch` processes. */
  fetchCpu: number;
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

async function runCluster(m: number): Promise<Measurement> {
  const nodes: Containerd[] = [];
  try {
    nodes.push(
      ...await Promise.all(
        Array.from({ length: m }, () => startContainerd({ registryHosts: [proxy.host] })),
      ),
    );
    // The previous cluster's connections close asynchronously; do not count them.
    for (let waited = 0; proxy.activeConnections > 0 && waited < 2_000; waited += 20) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const containerdPids = await Promise.all(
      nodes.map(async (node) => (await findPid(`${node.dir}/config.toml`))!),
    );
    const sampleAll = () =>
      Promise.all([
        sampleCpu(),
        Promise.all(containerdPids.map((pid) => cpuTimes(pid))),
        cpuTimes(registryPid),
        cpuTimes("self"),
      ]);
    proxy.resetCounters();
    const before = await sampleAll();
    const started = performance.now();
    const finishedAt: number[] = [];
    await Promise.all(nodes.map(async (node, i) => {
      const run = await spawnProgram([
        "fetch",
        "--cri-socket",
        node.socket,
        "--node-name",
        `node-${i + 1}`,
        "--log-format",
        "json",
        ...references,
      ]).finished;
      finishedAt.push(performance.now() - started);
      if (run.summary?.pulled !== references.length) {
        throw new Error(`node-${i + 1}: not every image was pulled:\n${run.stderr}`);
      }
    }));
    const after = await sampleAll();
    const sum = (times: Array<{ self: number }>) => times.reduce((s, t) => s + t.self, 0);
    return {
      allSeconds: Math.max(...finishedAt) / 1000,
      firstSeconds: Math.min(...finishedAt) / 1000,
      bytes: proxy.bytesServed,
      requests: proxy.requests.length,
      connections: new Set(proxy.requests.map((r) => r.connection)).size,
      peakConnections: proxy.peakConnections,
      cpuBusy: busyFraction(before[0], after[0]),
      containerdCpu: sum(after[1]) - sum(before[1]),
      registryCpu: after[2].self - before[2].self,
      proxyCpu: after[3].self - before[3].self,
      // The fetch processes are this process's children that exited meanwhile.
      fetchCpu: after[3].children - before[3].children,
    };
  } finally {
    await disposeAll(nodes);
  }
}

// Repetitions outermost, so a slow spell of the machine hits every M alike.
const samples = new Map<number, Measurement[]>(nodeCounts.map((m) => [m, []]));
for (let rep = 0; rep < reps; rep++) {
  for (const m of nodeCounts) samples.get(m)!.push(await runCluster(m));
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
function medianOf(m: number): Measurement {
  const ms = samples.get(m)!;
  const of = (key: keyof Measurement) => median(ms.map((x) => x[key]));
  return {
    allSeconds: of("allSeconds"),
    firstSeconds: of("firstSeconds"),
    bytes: of("bytes"),
    requests: of("requests"),
    connections: of("connections"),
    peakConnections: of("peakConnections"),
    cpuBusy: of("cpuBusy"),
    containerdCpu: of("containerdCpu"),
    registryCpu: of("registryCpu"),
    proxyCpu: of("proxyCpu"),
    fetchCpu: of("fetchCpu"),
  };
}

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
    `${latencyMs} ms per request, ${bandwidthMiB} MiB/s shared by all nodes; fetch with its ` +
    `defaults on every node; median of ${reps}; ${new Date().toISOString()}`,
);
const results = nodeCounts.map((m) => ({ m, r: medianOf(m) }));
const one = results[0].r;
table(
  [
    ["nodes", 6],
    ["all done s", 11],
    ["first s", 8],
    ["x 1 node", 9],
    ["at cap s", 9],
    ["MiB served", 11],
    ["x 1 node", 9],
    ["requests", 9],
    ["conns", 6],
    ["peak open", 10],
  ],
  results.map(({ m, r }) => [
    String(m),
    r.allSeconds.toFixed(2),
    r.firstSeconds.toFixed(2),
    `${(r.allSeconds / one.allSeconds).toFixed(2)}x`,
    (r.bytes / MiB / bandwidthMiB).toFixed(2),
    (r.bytes / MiB).toFixed(1),
    `${(r.bytes / one.bytes).toFixed(2)}x`,
    String(r.requests),
    String(r.connections),
    String(r.peakConnections),
  ]),
);
console.log(
  "x 1 node: against the first row. at cap s: the served bytes at the bandwidth cap, the " +
    "floor of all done s. conns: connections that carried requests; peak open: most " +
    "connections open at once, idle keep-alive ones included.",
);
console.log("\nCPU seconds while the nodes pulled, by process (2 cores = 2 CPU s per wall s):");
table(
  [
    ["nodes", 6],
    ["containerds", 12],
    ["registry", 9],
    ["proxy", 7],
    ["fetches", 8],
    ["machine busy", 13],
  ],
  results.map(({ m, r }) => [
    String(m),
    r.containerdCpu.toFixed(2),
    r.registryCpu.toFixed(2),
    r.proxyCpu.toFixed(2),
    r.fetchCpu.toFixed(2),
    `${Math.round(r.cpuBusy * 100)} %`,
  ]),
);
