/**
 * The wave coordinator's admission logic at cluster scale, in process: 5,000 nodes × 100 images
 * (default), every node asking for every image it lacks once per simulated second, each admitted
 * pull landing 2 s later, until every node has every image. Prints decisions per second (the time
 * spent inside the coordinator only), the simulated waves, and the heap the coordinator holds at
 * its fullest (measured with a forced GC before and after).
 *
 * Run: deno run -A --v8-flags=--expose-gc bench/waves_coordinator.ts [nodes] [images] [fanout]
 */
import { WaveCoordinator } from "../lib/waves/coordinator.ts";

const NODES = Number(Deno.args[0] ?? 5_000);
const IMAGES = Number(Deno.args[1] ?? 100);
const FANOUT = Number(Deno.args[2] ?? 4);
const PULL_SECONDS = 2;

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) console.error("(run with --v8-flags=--expose-gc for a memory figure)");
const heap = () => {
  gc?.();
  return Deno.memoryUsage().heapUsed;
};

const nodes = Array.from({ length: NODES }, (_, n) => `ip-10-0-${n >> 8}-${n & 255}.internal`);
const images = Array.from({ length: IMAGES }, (_, i) => `registry.example.com/team/svc-${i}:v1`);
/** Per node and image: 0 wants it, >0 the second it lands, -1 has it. */
const state = Array.from({ length: NODES }, () => new Float64Array(IMAGES));
let now = 1_700_000_000_000;
const before = heap();
const waves = new WaveCoordinator({ fanout: FANOUT, clock: { now: () => now } });
let remaining = NODES * IMAGES;
let decisionMs = 0, otherCalls = 0, otherMs = 0, seconds = 0, peakHeap = 0;

while (remaining > 0) {
  seconds++;
  now += 1_000;
  const t0 = performance.now();
  for (let n = 0; n < NODES; n++) {
    const row = state[n];
    for (let i = 0; i < IMAGES; i++) {
      if (row[i] !== 0) continue;
      if (waves.admit(nodes[n], images[i]).pull) row[i] = seconds + PULL_SECONDS;
    }
  }
  const t1 = performance.now();
  for (let n = 0; n < NODES; n++) {
    const row = state[n];
    for (let i = 0; i < IMAGES; i++) {
      if (row[i] <= 0) continue;
      otherCalls++;
      if (row[i] <= seconds) {
        waves.landed(nodes[n], images[i], { pulled: true });
        row[i] = -1;
        remaining--;
      } else waves.renew(nodes[n], images[i]);
    }
  }
  otherMs += performance.now() - t1;
  decisionMs += t1 - t0;
  if (seconds % 4 === 1) peakHeap = Math.max(peakHeap, heap() - before);
}
peakHeap = Math.max(peakHeap, heap() - before);
const snapshotStart = performance.now();
const snapshot = waves.snapshot();
const snapshotMs = performance.now() - snapshotStart;

const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
console.log(`nodes ${NODES}, images ${IMAGES}, first wave 1, fanout ${FANOUT}, pulls take 2 s`);
console.log("decisions       decision s  decisions/s  land+renew calls  calls/s   sim s  heap MiB");
console.log(
  [
    String(waves.decisions).padEnd(15),
    (decisionMs / 1000).toFixed(2).padStart(10),
    Math.round(waves.decisions / (decisionMs / 1000)).toLocaleString("en").padStart(12),
    String(otherCalls).padStart(17),
    Math.round(otherCalls / (otherMs / 1000)).toLocaleString("en").padStart(9),
    String(seconds).padStart(7),
    (gc ? mib(peakHeap) : "-").padStart(9),
  ].join(" "),
);
console.log(
  `snapshot of ${snapshot.images.length} images took ${snapshotMs.toFixed(1)} ms; ` +
    `every image on ${snapshot.images.every((i) => i.have === NODES) ? "every" : "NOT every"} node`,
);
