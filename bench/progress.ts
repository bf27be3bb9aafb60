/**
 * Stall detection by progress against the original tool's strategy (wall-clock attempt
 * timeouts that double), side by side in one run on the real stack:
 *
 * 1. A big image on a slow link: 16 MiB at 1 MiB/s with attempt timeouts of 4 s growing to 8 s
 *    (the default 30 s → 5 min against an image that needs more than 5 minutes, scaled down).
 * 2. A link that stalls midway: one layer's response goes silent after 3 MiB, default timeouts
 *    (30 s attempts, 10 s stall timeout).
 * 3. The silences of healthy pulls: 12 images sharing a 2 MiB/s link, sampled through
 *    containerd's content service every 250 ms; the longest time any image showed no new bytes,
 *    which the default `--stall-timeout` must comfortably exceed.
 *
 * Wall time of the whole `fetch` process; registry bytes as counted by the fault proxy.
 *
 * Run: deno run -A bench/progress.ts
 */
import { ContainerdProgressSource } from "../lib/runtime/containerd_progress.ts";
import { CriClient } from "../lib/runtime/cri_client.ts";
import { type Stack, startStack } from "../testing/stack/stack.ts";
import { jsonFetchArgs, runProgram } from "../testing/prefetcher_process.ts";

const MiB = 1 << 20;

interface Outcome {
  seconds: number;
  mib: number;
  result: string;
  attempts: number;
}

async function fetchOnce(stack: Stack, image: string, args: string[]): Promise<Outcome> {
  stack.proxy.resetCounters();
  const started = performance.now();
  const run = await runProgram([
    ...jsonFetchArgs(stack.containerd.socket),
    ...args,
    image,
  ]);
  const seconds = (performance.now() - started) / 1000;
  const summary = run.summary?.images[0];
  using cri = new CriClient(stack.containerd.socket);
  await cri.removeImage(image).catch(() => {});
  return {
    seconds,
    mib: stack.proxy.bytesServed / MiB,
    result: summary?.status === "failed" ? `failed (${summary.failure})` : summary?.status ?? "?",
    attempts: summary?.attempts ?? 0,
  };
}

function table(title: string, rows: Array<[string, Outcome]>): void {
  console.log(`\n${title}`);
  console.log(
    `${"strategy".padEnd(34)}${"wall s".padStart(8)}${"MiB served".padStart(12)}` +
      `${"attempts".padStart(10)}  result`,
  );
  for (const [name, o] of rows) {
    console.log(
      `${name.padEnd(34)}${o.seconds.toFixed(1).padStart(8)}${o.mib.toFixed(1).padStart(12)}` +
        `${String(o.attempts).padStart(10)}  ${o.result}`,
    );
  }
  const [[, a], [, b]] = rows;
  console.log(
    `ratio off/progress: wall ${(b.seconds / a.seconds).toFixed(2)}x, ` +
      `registry bytes ${(b.mib / a.mib).toFixed(2)}x`,
  );
}

await using stack = await startStack();
console.log(`progress benchmark, ${new Date().toISOString()}`);

// 1. Big image, slow link.
const big = await stack.pushImage({
  repository: "bench/big",
  tag: "v1",
  layers: 4,
  layerBytes: 4 * MiB,
});
const slowArgs = ["--initial-pull-attempt-timeout", "4s", "--max-pull-attempt-timeout", "8s"];
stack.proxy.setFaults({ bandwidthBytesPerSecond: MiB });
const bigRef = big.reference(stack.proxy.host);
const bigWatched = await fetchOnce(stack, bigRef, [...slowArgs, "--overall-timeout", "90s"]);
const bigOff = await fetchOnce(stack, bigRef, [
  ...slowArgs,
  "--overall-timeout",
  "90s",
  "--progress",
  "off",
]);
stack.proxy.setFaults({});
table("1. 16 MiB at 1 MiB/s, attempts 4s -> 8s, overall 90s", [
  ["fetch (progress watched)", bigWatched],
  ["fetch --progress off (original)", bigOff],
]);

// 2. A stall midway, default timeouts.
const mid = await stack.pushImage({
  repository: "bench/mid",
  tag: "v1",
  layers: 2,
  layerBytes: 4 * MiB,
});
const midRef = mid.reference(stack.proxy.host);
stack.proxy.setFaults({ stall: { count: 1, afterBytes: 3 * MiB } });
const midWatched = await fetchOnce(stack, midRef, []);
stack.proxy.setFaults({ stall: { count: 1, afterBytes: 3 * MiB } });
const midOff = await fetchOnce(stack, midRef, ["--progress", "off"]);
stack.proxy.setFaults({});
table("2. a layer stalls after 3 MiB, default timeouts", [
  ["fetch (progress watched)", midWatched],
  ["fetch --progress off (original)", midOff],
]);

// 3. Silences of healthy pulls.
const images = [];
for (let i = 0; i < 12; i++) {
  images.push(
    (await stack.pushImage({
      repository: `bench/healthy-${i}`,
      tag: "v1",
      layers: 2,
      layerBytes: MiB,
    }))
      .reference(stack.proxy.host),
  );
}
stack.proxy.setFaults({ bandwidthBytesPerSecond: 2 * MiB });
using source = new ContainerdProgressSource(stack.containerd.socket);
const last = new Map<string, { bytes: number; at: number }>();
const longest = new Map<string, number>();
let sampling = true;
const sampler = (async () => {
  while (sampling) {
    const now = performance.now();
    const samples = await source.sample(images);
    for (const [image, progress] of samples) {
      if (progress.activeDownloads === 0) continue;
      const previous = last.get(image);
      if (!previous || progress.receivedBytes > previous.bytes) {
        if (previous) longest.set(image, Math.max(longest.get(image) ?? 0, now - previous.at));
        last.set(image, { bytes: progress.receivedBytes, at: now });
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
})();
const healthy = await runProgram([
  ...jsonFetchArgs(stack.containerd.socket),
  ...images,
]);
sampling = false;
await sampler;
stack.proxy.setFaults({});
const gaps = [...longest.values()].sort((a, b) => a - b);
console.log(
  `\n3. 12 images x 2 MiB sharing 2 MiB/s: ${healthy.summary?.pulled} pulled in ` +
    `${((healthy.summary?.wallMs ?? 0) / 1000).toFixed(1)} s; longest silence of a downloading ` +
    `image: median ${(gaps[Math.floor(gaps.length / 2)] / 1000).toFixed(1)} s, ` +
    `max ${(gaps.at(-1)! / 1000).toFixed(1)} s (containerd shows bytes in 1 MiB steps)`,
);
