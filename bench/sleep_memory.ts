/**
 * Footprint of `image-prefetcher sleep`, the DaemonSet's main container: its resident memory
 * side by side with a bare Deno process that does nothing (the floor Deno allows) and with a
 * process that has loaded the `fetch` module (what `sleep` would cost if it loaded everything).
 *
 * Whole-process measurements: VmRSS and VmHWM from /proc/<pid>/status, median of 5 runs each.
 *
 * Run: deno task bench:sleep
 */
import { PERMISSION_FLAGS } from "../testing/prefetcher_process.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const RUNS = 5;
const SETTLE_MS = 1_500;

interface Case {
  name: string;
  args: string[];
}

const idleScript = await Deno.makeTempFile({ suffix: ".ts" });
await Deno.writeTextFile(idleScript, "setInterval(() => {}, 1 << 30);\n");
const fetchLoaded = await Deno.makeTempFile({ suffix: ".ts" });
await Deno.writeTextFile(
  fetchLoaded,
  `import "${ROOT}cmd/fetch.ts";\nsetInterval(() => {}, 1 << 30);\n`,
);

const cases: Case[] = [
  { name: "bare deno, idle (floor)", args: ["run", "--quiet", idleScript] },
  {
    name: "image-prefetcher sleep",
    args: ["run", "--quiet", ...PERMISSION_FLAGS, `${ROOT}main.ts`, "sleep"],
  },
  {
    name: "fetch module loaded, idle",
    args: ["run", "--quiet", "-A", "--config", `${ROOT}deno.json`, fetchLoaded],
  },
];

async function residentKiB(args: string[]): Promise<number> {
  const child = new Deno.Command(Deno.execPath(), { args, stdout: "null", stderr: "null" }).spawn();
  await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
  const status = await Deno.readTextFile(`/proc/${child.pid}/status`);
  child.kill("SIGTERM");
  await child.status;
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]);
}

const median = (values: number[]) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)];
const results: Array<{ name: string; kib: number }> = [];
for (const c of cases) {
  const samples: number[] = [];
  for (let i = 0; i < RUNS; i++) samples.push(await residentKiB(c.args));
  results.push({ name: c.name, kib: median(samples) });
}
await Deno.remove(idleScript);
await Deno.remove(fetchLoaded);

const floor = results[0].kib;
console.log(
  `sleep footprint (median of ${RUNS}, VmRSS, whole process), ${new Date().toISOString()}`,
);
console.log(`${"case".padEnd(30)} ${"RSS MiB".padStart(8)} ${"x floor".padStart(8)}`);
for (const r of results) {
  console.log(
    `${r.name.padEnd(30)} ${(r.kib / 1024).toFixed(1).padStart(8)} ${
      (r.kib / floor).toFixed(2).padStart(8)
    }`,
  );
}
