/**
 * Runs every benchmark of `bench/` one after the other and prints their tables. A benchmark
 * that fails does not stop the others; the exit status is 1 when any failed.
 *
 * Run: deno task bench   (as root: the benchmarks start containerd)
 */
const BENCHMARKS = [
  "sleep_memory.ts",
  "parallelism.ts",
  "progress.ts",
  "big_image.ts",
  "one_node.ts",
  "cluster.ts",
  "aggregator.ts",
  "store_scale.ts",
  "waves_coordinator.ts",
  "waves_grpc.ts",
  "waves_flood.ts",
  "cluster_sim.ts",
];
/** Extra `deno run` flags a benchmark needs. */
const FLAGS: Record<string, string[]> = { "waves_coordinator.ts": ["--v8-flags=--expose-gc"] };

const failed: string[] = [];
for (const name of BENCHMARKS) {
  console.log(`\n## ${name}\n`);
  const started = performance.now();
  const { code } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", ...FLAGS[name] ?? [], new URL(name, import.meta.url).pathname],
    stdout: "inherit",
    stderr: "inherit",
  }).spawn().status;
  const seconds = Math.round((performance.now() - started) / 1000);
  console.log(`\n(${name}: ${code === 0 ? "done" : `failed, exit ${code}`} in ${seconds} s)`);
  if (code !== 0) failed.push(name);
}
if (failed.length > 0) {
  console.error(`\nfailed: ${failed.join(", ")}`);
  Deno.exit(1);
}
