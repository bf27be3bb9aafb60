/**
 * The central tier at cluster scale: thousands of simulated nodes in this process (each `fetch`'s
 * real scheduler, progress monitor and waves gate over a modelled runtime) against a real
 * `aggregate-metrics` process over the real gRPC protocol (`testing/cluster_sim/`). Per cluster
 * size, side by side: every node pulling everything at once, waves, waves with one image the
 * registry does not have (404), waves with 5 nodes on a link 1,000× slower that start first and
 * seed images (the run waits for the others, not for their own pulls), and waves with every fault
 * at once (the 404, the slow seeds, 1 % of the nodes dying, 1 % reimaged after their run and
 * running again, 429s from the origin from 2 s to 4 s, the server SIGKILLed at 5 s and restarted
 * 2 s later). Columns: seconds until every node (dead and slow ones aside) is done, or how many
 * were done at the time limit; seconds from the first failure of the 404 image until every node
 * is done with it; bytes the origin served over the image set; most nodes pulling at once; most
 * admission decisions answered in one second; the server's peak RSS; holders the coordinator
 * counts beyond the nodes that hold images at the end (negative: landed news that did not reach
 * it within fetch's final flush); CPU seconds of the simulated nodes and of the server.
 *
 * The model: 50 images of 0.25–2.5 MiB, each node on a 1 Gbit/s link, the origin's egress
 * 10 Gbit/s, a pull-through cache in front of it. Sizes are a real set's (10–100 MiB) scaled
 * down 40×, so pulls take 1/40 of their real time while the coordinator's polls (1 s), leases
 * (30 s) and fetch's retries run at their real pace: waves' overhead looks larger here than in a
 * real cluster, never smaller.
 *
 * Run: deno run -A bench/cluster_sim.ts [nodes ...] [--only=404,slow] [--repeat=3]   (default:
 * 1000 5000, every case once; `--only` keeps the cases whose name contains one of the words,
 * `--repeat` runs each case that many times, one row each, since the timings of one run on a
 * shared machine vary)
 */
import { formatBytes } from "../lib/core/log.ts";
import {
  type ClusterSimOptions,
  type ClusterSimResult,
  simulateCluster,
} from "../testing/cluster_sim/cluster_sim.ts";

const ONLY = Deno.args.find((a) => a.startsWith("--only="))?.slice(7).split(",");
const REPEAT = Number(Deno.args.find((a) => a.startsWith("--repeat="))?.slice(9) ?? 1);
const NUMBERS = Deno.args.filter((a) => !a.startsWith("--")).map(Number);
const SIZES = NUMBERS.length > 0 ? NUMBERS : [1_000, 5_000];
const MIB = 1024 * 1024;

const CASES: Array<[string, Partial<ClusterSimOptions>]> = [
  ["all at once", { waves: false }],
  ["waves", { waves: true }],
  ["waves, one 404", { waves: true, faults: { missingImages: 1 } }],
  ["waves, 5 slow seeds", { waves: true, faults: { slowNodes: 5 } }],
  ["waves, every fault", {
    waves: true,
    faults: {
      missingImages: 1,
      deadNodes: -1,
      reimagedNodes: -1,
      slowNodes: 5,
      rateLimitWindowMs: [2_000, 4_000],
      serverKillAtMs: 5_000,
    },
  }],
];

function seconds(ms: number | undefined, result: ClusterSimResult): string {
  if (ms !== undefined) return (ms / 1000).toFixed(1);
  return `>${result.doneNodes}/${result.liveNodes}`;
}

const header = [
  "nodes",
  "case".padEnd(19),
  "all done s",
  "404 done s",
  "origin x",
  "peak pulling",
  "decisions/s",
  "server peak RSS",
  "phantom holders",
  "CPU s sim/server",
].join("  ");
console.log(header);
for (const nodes of SIZES) {
  for (const [name, overrides] of CASES.flatMap((c) => Array(REPEAT).fill(c))) {
    if (ONLY && !ONLY.some((word) => name.includes(word))) continue;
    const faults = { ...overrides.faults };
    if (faults.deadNodes === -1) faults.deadNodes = Math.ceil(nodes / 100);
    if (faults.reimagedNodes === -1) faults.reimagedNodes = Math.ceil(nodes / 100);
    console.error(`${nodes} nodes, ${name}…`);
    const result = await simulateCluster({
      nodes,
      images: 50,
      waves: false,
      imageBytes: [MIB / 4, 5 * MIB / 2],
      nodeBytesPerSecond: 125_000_000,
      originBytesPerSecond: 1_250_000_000,
      timeoutMs: nodes <= 1_000 ? 180_000 : 300_000,
      log: (line) => console.error(line),
      ...overrides,
      faults,
    });
    const row = [
      String(nodes).padEnd(5),
      name.padEnd(19),
      seconds(result.allDoneMs, result).padStart(10),
      (faults.missingImages ? seconds(result.missingDoneAfterFirstFailureMs, result) : "-")
        .padStart(10),
      result.originRatio.toFixed(2).padStart(8),
      String(result.peakNodesPulling).padStart(12),
      (overrides.waves ? String(result.peakDecisionsPerSecond) : "-").padStart(11),
      formatBytes(result.serverPeakRssBytes).padStart(15),
      String(result.phantomHolders ?? "-").padStart(15),
      `${result.simCpuSeconds.toFixed(0)}/${result.serverCpuSeconds.toFixed(0)}`.padStart(16),
    ].join("  ");
    console.log(row);
    if (result.wronglyFailed > 0) {
      console.log(`  ${result.wronglyFailed} nodes failed an image that exists`);
    }
  }
}
Deno.exit(0);
