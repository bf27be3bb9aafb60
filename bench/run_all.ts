/**
 * Runs every benchmark of `bench/` one after the other and prints their tables.
 *
 * Run: deno task bench   (as root: the benchmarks start containerd)
 */
const BENCHMARKS = ["sleep_memory.ts", "parallelism.ts"];

for (const name of BENCHMARKS) {
  console.log(`\n## ${name}\n`);
  const { code } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", new URL(name, import.meta.url).pathname],
    stdout: "inherit",
    stderr: "inherit",
  }).spawn().status;
  if (code !== 0) Deno.exit(code);
}
