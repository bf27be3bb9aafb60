/**
 * Footprint of `image-prefetcher sleep`, the DaemonSet's main container: its resident memory
 * side by side with a bare Deno process that does nothing (the floor Deno allows), with a
 * process that has loaded the `fetch` module (what `sleep` would cost if it loaded everything),
 * and with `image-prefetcher keep` idle between two cycles (the main container of
 * `deploy.ts --keep`): started against a real containerd and registry, its first cycle (a child
 * process) has pulled one image and pinned it, then the list is edited as the kubelet edits a
 * ConfigMap volume and a second cycle runs, and the whole process tree is measured 5 s after
 * that child has exited (what the first cycle and the first edit leave in the idle process
 * stays; measured over minutes, it does not grow further). The target: keep idle costs at most
 * 8 MiB more than sleep.
 *
 * Whole-process-tree measurements: VmRSS from /proc/<pid>/status, and its private part (the
 * anonymous memory of /proc/<pid>/smaps_rollup; the rest is the Deno binary's code, file-backed
 * and shared with every process running it), summed over the process and its children, median
 * of 5 runs each.
 *
 * Run: deno task bench:sleep
 */
import { PERMISSION_FLAGS } from "../testing/prefetcher_process.ts";
import { startStack } from "../testing/stack/stack.ts";
import { CONTAINERD_1_7 } from "../testing/stack/containerd_versions.ts";
import { ConfigMapVolume } from "../testing/configmap_volume.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const RUNS = 5;
const SETTLE_MS = 1_500;
/** How long keep idles after its last cycle before it is measured. */
const IDLE_AFTER_CYCLE_MS = 5_000;

interface Case {
  name: string;
  args: string[];
  /** Resolves when the process is idle and may be measured. @default {SETTLE_MS} */
  settled?: (pid: number) => Promise<void>;
}

await using stack = await startStack({ containerd: CONTAINERD_1_7 });
const image = await stack.pushImage({ repository: "bench/keep", tag: "v1" });
const volumeDir = await Deno.makeTempDir({ prefix: "bench-keep-" });
const volume = new ConfigMapVolume(volumeDir);
await volume.write({ "images.txt": `${image.reference(stack.registry.host)}\n` });

const idleScript = await Deno.makeTempFile({ suffix: ".ts" });
await Deno.writeTextFile(idleScript, "setInterval(() => {}, 1 << 30);\n");
const fetchLoaded = await Deno.makeTempFile({ suffix: ".ts" });
await Deno.writeTextFile(
  fetchLoaded,
  `import "${ROOT}cmd/fetch.ts";\nimport "${ROOT}lib/pull/run_fetch.ts";\nimport "${ROOT}lib/metrics/client/reporter.ts";\nimport "${ROOT}lib/waves/client/node_waves.ts";\nsetInterval(() => {}, 1 << 30);\n`,
);

const cases: Case[] = [
  { name: "bare deno, idle (floor)", args: ["run", "--quiet", idleScript] },
  {
    name: "image-prefetcher sleep",
    args: ["run", "--quiet", ...PERMISSION_FLAGS, `${ROOT}main.ts`, "sleep"],
  },
  {
    name: "pulling code loaded, idle",
    args: ["run", "--quiet", "-A", "--config", `${ROOT}deno.json`, fetchLoaded],
  },
  {
    name: "image-prefetcher keep, idle",
    args: [
      "run",
      "--quiet",
      ...PERMISSION_FLAGS,
      `${ROOT}main.ts`,
      "keep",
      "--cri-socket",
      stack.containerd.socket,
      "--image-list-file",
      volume.path("images.txt"),
      "--pin",
      "--refresh-interval",
      "6h",
    ], // deno-fmt-ignore
    settled: afterAnEdit,
  },
];

/** The pids of `pid`'s children. */
async function childrenOf(pid: number): Promise<number[]> {
  const text = await Deno.readTextFile(`/proc/${pid}/task/${pid}/children`).catch(() => "");
  return text.trim().split(/\s+/).filter(Boolean).map(Number);
}

/** Waits until `pid` has a child process, for at most `ms`. */
async function childStarted(pid: number, ms: number): Promise<void> {
  const deadline = performance.now() + ms;
  while ((await childrenOf(pid)).length === 0 && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Waits until `pid` has no child process left, for at most 60 s. */
async function childrenGone(pid: number): Promise<void> {
  const deadline = performance.now() + 60_000;
  while ((await childrenOf(pid)).length > 0 && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

let edits = 0;

/**
 * Waits until keep's first cycle has run, edits the list (a comment line, so the images stay the
 * same) and waits until the cycle that follows has run too, then lets the process idle.
 */
async function afterAnEdit(pid: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
  await childrenGone(pid);
  await volume.write({
    "images.txt": `${image.reference(stack.registry.host)}\n# edit ${++edits}\n`,
  });
  await childStarted(pid, 10_000);
  await childrenGone(pid);
  await new Promise((resolve) => setTimeout(resolve, IDLE_AFTER_CYCLE_MS));
}

/** Resident memory of a process tree: all of it, and the private (anonymous) part, in KiB. */
interface Footprint {
  rss: number;
  anonymous: number;
}

/** VmRSS and the anonymous memory (smaps_rollup) of `pid` and all its descendants. */
async function treeKiB(pid: number): Promise<Footprint> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`).catch(() => "");
  const rollup = await Deno.readTextFile(`/proc/${pid}/smaps_rollup`).catch(() => "");
  const sum = {
    rss: Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0),
    anonymous: Number(/Anonymous:\s+(\d+) kB/.exec(rollup)?.[1] ?? 0),
  };
  for (const child of await childrenOf(pid)) {
    const more = await treeKiB(child);
    sum.rss += more.rss;
    sum.anonymous += more.anonymous;
  }
  return sum;
}

async function residentKiB(c: Case): Promise<Footprint> {
  const child = new Deno.Command(Deno.execPath(), {
    args: c.args,
    stdout: "null",
    stderr: "null",
  }).spawn();
  await (c.settled?.(child.pid) ?? new Promise((resolve) => setTimeout(resolve, SETTLE_MS)));
  const kib = await treeKiB(child.pid);
  child.kill("SIGTERM");
  await child.status;
  return kib;
}

const median = (values: number[]) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)];
const results: Array<{ name: string; kib: number; anonymousKiB: number }> = [];
for (const c of cases) {
  const samples: Footprint[] = [];
  for (let i = 0; i < RUNS; i++) samples.push(await residentKiB(c));
  results.push({
    name: c.name,
    kib: median(samples.map((s) => s.rss)),
    anonymousKiB: median(samples.map((s) => s.anonymous)),
  });
}
await Deno.remove(idleScript);
await Deno.remove(fetchLoaded);
await Deno.remove(volumeDir, { recursive: true });

const floor = results[0].kib;
console.log(
  `sleep footprint (median of ${RUNS}, VmRSS, whole process), ${new Date().toISOString()}`,
);
console.log(
  `${"case".padEnd(30)} ${"RSS MiB".padStart(8)} ${"x floor".padStart(8)} ${
    "private MiB".padStart(12)
  }`,
);
for (const r of results) {
  console.log(
    `${r.name.padEnd(30)} ${(r.kib / 1024).toFixed(1).padStart(8)} ${
      (r.kib / floor).toFixed(2).padStart(8)
    } ${(r.anonymousKiB / 1024).toFixed(1).padStart(12)}`,
  );
}

const sleep = results.find((r) => r.name === "image-prefetcher sleep")!;
const keep = results.find((r) => r.name === "image-prefetcher keep, idle")!;
console.log(
  `keep idle - sleep: ${((keep.kib - sleep.kib) / 1024).toFixed(1)} MiB RSS ` +
    `(target: at most 8 MiB), of it private ${
      ((keep.anonymousKiB - sleep.anonymousKiB) / 1024).toFixed(1)
    } MiB; keep/sleep ${(keep.kib / sleep.kib).toFixed(2)}`,
);
