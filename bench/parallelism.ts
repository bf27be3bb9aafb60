/**
 * Chooses `fetch`'s default `--max-parallel` from a measurement: one node pulls 12 images
 * (1–8 MiB each, 3 layers) through the fault proxy with WAN-like per-request latency and a
 * shared bandwidth cap, at several bounds on parallelism, side by side in one run. Each case
 * pulls into a fresh containerd, so nothing is cached between cases.
 *
 * Whole-process wall time of the `fetch` subprocess, median of the repetitions.
 *
 * Run: deno run -A bench/parallelism.ts [--latency-ms 50] [--bandwidth-mib 40] [--reps 3]
 */
import { parseArgs } from "node:util";
import {
  ensureDebianPackages,
  pushImage,
  STACK_PACKAGES,
  startContainerd,
  startFaultProxy,
  startRegistry,
} from "../testing/stack/stack.ts";
import { runProgram } from "../testing/prefetcher_process.ts";

const { values } = parseArgs({
  options: {
    "latency-ms": { type: "string", default: "50" },
    "bandwidth-mib": { type: "string", default: "40" },
    reps: { type: "string", default: "3" },
  },
});
const latencyMs = Number(values["latency-ms"]);
const bandwidth = Number(values["bandwidth-mib"]) * 1024 * 1024;
const reps = Number(values.reps);
const BOUNDS = [1, 2, 4, 8, 0];

await ensureDebianPackages([...STACK_PACKAGES]);
await using registry = await startRegistry();
await using proxy = await startFaultProxy(registry.url);
const images = [];
for (let i = 0; i < 12; i++) {
  const layerBytes = Math.round(((1 + (i % 8)) << 20) / 3);
  images.push(
    await pushImage(registry, { repository: `bench/app-${i}`, tag: "v1", layers: 3, layerBytes }),
  );
}
const totalBytes = images.reduce((sum, image) => sum + image.sizeBytes, 0);
const references = images.map((image) => image.reference(proxy.host));

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows: Array<{ bound: number; seconds: number }> = [];
for (const bound of BOUNDS) {
  const seconds: number[] = [];
  for (let rep = 0; rep < reps; rep++) {
    await using containerd = await startContainerd({ registryHosts: [proxy.host] });
    proxy.setFaults({ latencyMs, bandwidthBytesPerSecond: bandwidth });
    proxy.resetCounters();
    const started = performance.now();
    const run = await runProgram([
      "fetch",
      "--cri-socket",
      containerd.socket,
      "--max-parallel",
      String(bound),
      "--log-format",
      "json",
      ...references,
    ]);
    seconds.push((performance.now() - started) / 1000);
    if (run.summary?.pulled !== images.length) {
      throw new Error(`max-parallel ${bound}: not every image was pulled:\n${run.stderr}`);
    }
  }
  rows.push({ bound, seconds: median(seconds) });
}

const baseline = rows[0].seconds;
console.log(
  `12 images, ${(totalBytes / 2 ** 20).toFixed(1)} MiB, ${latencyMs} ms per request, ` +
    `${values["bandwidth-mib"]} MiB/s shared; median of ${reps}; ${new Date().toISOString()}`,
);
const cell = (text: string, width: number) => text.padStart(width);
console.log(`${"max-parallel".padEnd(14)}${cell("wall s", 8)}${cell("speed-up vs 1", 15)}`);
for (const row of rows) {
  const bound = row.bound === 0 ? "0 (all)" : String(row.bound);
  const speedUp = `${(baseline / row.seconds).toFixed(2)}x`;
  console.log(`${bound.padEnd(14)}${cell(row.seconds.toFixed(2), 8)}${cell(speedUp, 15)}`);
}
