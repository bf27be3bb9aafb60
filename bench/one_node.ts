/**
 * One node, N images: how long it takes to get a set of images onto one node with each way of
 * prefetching them, side by side in one run on the real stack (registry behind the fault proxy
 * with per-request latency and a bandwidth cap shared by all connections):
 *
 * a. sequential CRI pulls (`CriClient.pullImage` one after another): what a kubelet with
 *    `serializeImagePulls` does for the usual "one init container per image" DaemonSet;
 * b. `ctr images pull` one after another (containerd's own client, one process per image);
 * c. `fetch` with its default parallelism;
 * d. `fetch --max-parallel 0` (everything at once, the original tool's strategy);
 * e. `fetch` again on (c)'s node, where every image is already present.
 *
 * Cases (a)–(d) each pull into a fresh containerd, so nothing is cached; the cases of one
 * repetition run one after another, and the table shows the median of the repetitions. The
 * bandwidth cap is below what this machine's 2 cores can move through the proxy, so the link,
 * not the CPU, bounds the parallel cases (the CPU table shows where the CPU time went).
 *
 * Whole-process figures: the wall time of (b)–(e) includes starting each process (`ctr`, or
 * Deno and the `fetch` module); (a) runs in this process over an open gRPC channel. The peak
 * memory of `fetch` is the `VmHWM` of its process. Registry bytes, requests and connections are
 * counted by the fault proxy; CPU busy is the whole machine's.
 *
 * Run: deno run -A bench/one_node.ts [--images 12] [--min-mib 2] [--max-mib 12]
 *        [--latency-ms 50] [--bandwidth-mib 40] [--reps 3]
 */
import { parseArgs } from "node:util";
import { CriClient } from "../lib/runtime/cri_client.ts";
import {
  type Containerd,
  ensureDebianPackages,
  type FaultProxy,
  findOnPath,
  STACK_PACKAGES,
  startContainerd,
  startFaultProxy,
  startRegistry,
} from "../testing/stack/stack.ts";
import { jsonFetchArgs, spawnProgram } from "../testing/prefetcher_process.ts";
import { busyFraction, sampleCpu } from "./cpu_load.ts";
import { ctrImagesPull } from "./ctr_pull.ts";
import { pushImageSet } from "./image_set.ts";
import { cpuTimes, findPid } from "./process_cpu.ts";
import { trackPeakMemory } from "./process_memory.ts";

const { values } = parseArgs({
  options: {
    images: { type: "string", default: "12" },
    "min-mib": { type: "string", default: "2" },
    "max-mib": { type: "string", default: "12" },
    "latency-ms": { type: "string", default: "50" },
    "bandwidth-mib": { type: "string", default: "40" },
    reps: { type: "string", default: "3" },
  },
});
const count = Number(values.images);
const latencyMs = Number(values["latency-ms"]);
const bandwidthMiB = Number(values["bandwidth-mib"]);
const reps = Number(values.reps);
const MiB = 2 ** 20;

/** What one case measured. */
interface Measurement {
  seconds: number;
  /** `fetch`'s own wall time from its summary, without process start-up. */
  ownSeconds?: number;
  bytes: number;
  requests: number;
  connections: number;
  peakConnections: number;
  peakRssKiB?: number;
  /** Whole machine, 0–1. */
  cpuBusy: number;
  /** CPU seconds of the node's containerd. */
  containerdCpu: number;
  /** CPU seconds of the registry. */
  registryCpu: number;
  /** CPU seconds of this process: the fault proxy, and the CRI client of (a). */
  benchCpu: number;
  /** CPU seconds of the client processes that ran (`ctr`, `fetch`). */
  clientCpu: number;
}

/** One way of getting the images onto a node. */
interface Case {
  key: string;
  name: string;
  /** Pulls every image onto `containerd`'s node; returns `fetch`'s figures when it ran it. */
  run(containerd: Containerd): Promise<Partial<Measurement>>;
}

await ensureDebianPackages([...STACK_PACKAGES]);
const ctr = (await findOnPath("ctr"))!;
await using registry = await startRegistry();
await using proxy = await startFaultProxy(registry.url);
const images = await pushImageSet(registry, {
  count,
  minMiB: Number(values["min-mib"]),
  maxMiB: Number(values["max-mib"]),
});
const totalBytes = images.reduce((sum, image) => sum + image.sizeBytes, 0);
const references = images.map((image) => image.reference(proxy.host));
proxy.setFaults({ latencyMs, bandwidthBytesPerSecond: bandwidthMiB * MiB });

async function criSequential(containerd: Containerd): Promise<Partial<Measurement>> {
  using cri = new CriClient(containerd.socket);
  for (const reference of references) await cri.pullImage(reference);
  return {};
}

async function ctrSequential(containerd: Containerd): Promise<Partial<Measurement>> {
  for (const reference of references) {
    const error = await ctrImagesPull(ctr, containerd.socket, reference);
    if (error !== undefined) throw new Error(`ctr images pull ${reference}: ${error}`);
  }
  return {};
}

function fetchWith(flags: string[], expect: "pulled" | "present") {
  return async (containerd: Containerd): Promise<Partial<Measurement>> => {
    const program = spawnProgram([
      ...jsonFetchArgs(containerd.socket),
      ...flags,
      ...references,
    ]);
    const tracker = trackPeakMemory(program.process.pid);
    const run = await program.finished;
    const peakRssKiB = await tracker.stop();
    if (run.summary?.[expect] !== references.length) {
      throw new Error(`fetch ${flags.join(" ")}: not every image was ${expect}:\n${run.stderr}`);
    }
    return { ownSeconds: run.summary.wallMs / 1000, peakRssKiB };
  };
}

const cases: Case[] = [
  { key: "a", name: "sequential CRI pulls (kubelet)", run: criSequential },
  { key: "b", name: "ctr images pull, one by one", run: ctrSequential },
  { key: "c", name: "fetch, default parallelism", run: fetchWith([], "pulled") },
  {
    key: "d",
    name: "fetch --max-parallel 0",
    run: fetchWith(["--max-parallel", "0"], "pulled"),
  },
  { key: "e", name: "fetch again, warm (c's node)", run: fetchWith([], "present") },
];

const registryPid = (await findPid(`${registry.dir}/config.yml`))!;

async function measure(
  proxy: FaultProxy,
  containerd: Containerd,
  c: Case,
): Promise<Measurement> {
  const containerdPid = (await findPid(`${containerd.dir}/config.toml`))!;
  proxy.resetCounters();
  const before = await Promise.all([
    sampleCpu(),
    cpuTimes(containerdPid),
    cpuTimes(registryPid),
    cpuTimes("self"),
  ]);
  const started = performance.now();
  const extra = await c.run(containerd);
  const seconds = (performance.now() - started) / 1000;
  const after = await Promise.all([
    sampleCpu(),
    cpuTimes(containerdPid),
    cpuTimes(registryPid),
    cpuTimes("self"),
  ]);
  using cri = new CriClient(containerd.socket);
  for (const reference of references) {
    if (!await cri.imageStatus(reference)) throw new Error(`${c.name}: ${reference} is missing`);
  }
  return {
    seconds,
    bytes: proxy.bytesServed,
    requests: proxy.requests.length,
    connections: new Set(proxy.requests.map((r) => r.connection)).size,
    peakConnections: proxy.peakConnections,
    cpuBusy: busyFraction(before[0], after[0]),
    containerdCpu: after[1].self - before[1].self,
    registryCpu: after[2].self - before[2].self,
    benchCpu: after[3].self - before[3].self,
    // Children of this process that exited during the case: the ctr or fetch processes.
    clientCpu: after[3].children - before[3].children,
    ...extra,
  };
}

/** Waits until the proxy has no open connection left (a stopped node's close), at most 2 s. */
async function connectionsClosed(): Promise<void> {
  for (let waited = 0; proxy.activeConnections > 0 && waited < 2_000; waited += 20) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

// (e) runs right after (c) on (c)'s node, which is then stopped: its idle connections to the
// registry would otherwise count as open during the next case.
const order = ["a", "b", "c", "e", "d"].map((key) => cases.find((c) => c.key === key)!);
const samples = new Map<string, Measurement[]>(cases.map((c) => [c.key, []]));
for (let rep = 0; rep < reps; rep++) {
  let node: Containerd | undefined;
  try {
    for (const c of order) {
      if (c.key !== "e") {
        await node?.[Symbol.asyncDispose]();
        await connectionsClosed();
        node = await startContainerd({ registryHosts: [proxy.host] });
      }
      samples.get(c.key)!.push(await measure(proxy, node!, c));
    }
  } finally {
    await node?.[Symbol.asyncDispose]();
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
function medianOf(key: string): Measurement {
  const ms = samples.get(key)!;
  const of = (pick: (m: Measurement) => number | undefined) => {
    const xs = ms.map(pick).filter((x): x is number => x !== undefined);
    return xs.length === 0 ? undefined : median(xs);
  };
  return {
    seconds: of((m) => m.seconds)!,
    ownSeconds: of((m) => m.ownSeconds),
    bytes: of((m) => m.bytes)!,
    requests: of((m) => m.requests)!,
    connections: of((m) => m.connections)!,
    peakConnections: of((m) => m.peakConnections)!,
    peakRssKiB: of((m) => m.peakRssKiB),
    cpuBusy: of((m) => m.cpuBusy)!,
    containerdCpu: of((m) => m.containerdCpu)!,
    registryCpu: of((m) => m.registryCpu)!,
    benchCpu: of((m) => m.benchCpu)!,
    clientCpu: of((m) => m.clientCpu)!,
  };
}

console.log(
  `one node: ${count} images (${values["min-mib"]}-${values["max-mib"]} MiB, 3 layers each, ` +
    `${(totalBytes / MiB).toFixed(1)} MiB in all), ${latencyMs} ms per request, ` +
    `${bandwidthMiB} MiB/s shared cap (link-bound floor ${
      (totalBytes / MiB / bandwidthMiB)
        .toFixed(1)
    } s); median of ${reps}; ${new Date().toISOString()}`,
);
const table = (columns: Array<[string, number]>, rows: string[][]) => {
  for (const cells of [columns.map(([title]) => title), ...rows]) {
    console.log(
      cells.map((cell, i) => i === 0 ? cell.padEnd(columns[i][1]) : cell.padStart(columns[i][1]))
        .join(""),
    );
  }
};
const baseline = medianOf("a").seconds;
const results = cases.map((c) => ({ c, m: medianOf(c.key) }));
table(
  [
    ["case", 34],
    ["wall s", 8],
    ["vs (a)", 8],
    ["own s", 7],
    ["MiB served", 11],
    ["requests", 9],
    ["conns", 6],
    ["peak open", 10],
    ["peak RSS MiB", 13],
  ],
  results.map(({ c, m }) => [
    `(${c.key}) ${c.name}`,
    m.seconds.toFixed(2),
    `${(baseline / m.seconds).toFixed(2)}x`,
    m.ownSeconds === undefined ? "-" : m.ownSeconds.toFixed(2),
    (m.bytes / MiB).toFixed(1),
    String(m.requests),
    String(m.connections),
    m.requests === 0 ? "-" : String(m.peakConnections),
    m.peakRssKiB === undefined ? "-" : (m.peakRssKiB / 1024).toFixed(1),
  ]),
);
console.log(
  "(c) and (d) run the same strategy: the default of --max-parallel is 0 (no bound). " +
    "vs (a): times faster than (a). own s: fetch's own wall time from its summary (without " +
    "process start-up). conns: connections that carried requests; peak open: most connections " +
    "open at once, idle keep-alive ones included. peak RSS: VmHWM of the fetch process.",
);
console.log("\nCPU seconds spent during each case, by process (2 cores = 2 CPU s per wall s):");
table(
  [
    ["case", 34],
    ["containerd", 11],
    ["registry", 9],
    ["proxy+bench", 12],
    ["ctr/fetch", 10],
    ["machine busy", 13],
  ],
  results.map(({ c, m }) => [
    `(${c.key}) ${c.name}`,
    m.containerdCpu.toFixed(2),
    m.registryCpu.toFixed(2),
    m.benchCpu.toFixed(2),
    c.key === "a" ? "-" : m.clientCpu.toFixed(2),
    `${Math.round(m.cpuBusy * 100)} %`,
  ]),
);
