/**
 * One big image, side by side in one run on the real stack: `fetch` with its default flags,
 * `fetch` with attempt timeouts far shorter than the image's unpack, `fetch` through a layer that
 * stalls midway, and one `ctr images pull` as the reference (containerd's own client: one
 * download, then the unpack).
 *
 * The image (1 GiB in 4 layers of incompressible bytes by default) sits behind the fault proxy at
 * a capped rate. Every case pulls into a fresh containerd, so none finds a blob of another.
 * Columns: wall time of the whole process, registry bytes as a multiple of the image (fault
 * proxy), attempts. Goals (issue 19): every case lands; registry bytes ≤ 1.05× the image without
 * a stall and ≤ 1.3× with one; wall within 1.1× of the reference (the raw transfer plus its
 * unpack).
 *
 * Run: deno run -A bench/big_image.ts [--mib 1024] [--layers 4] [--rate-mib 100]
 *      [--containerd 1.6.20]
 */
import { parseArgs } from "node:util";
import {
  type Containerd,
  CONTAINERD_VERSIONS,
  ensureDebianPackages,
  obtainContainerd,
  type PushedImage,
  pushImage,
  STACK_PACKAGES,
  startContainerd,
  startFaultProxy,
  startRegistry,
} from "../testing/stack/stack.ts";
import { jsonFetchArgs, runProgram } from "../testing/prefetcher_process.ts";
import { ctrImagesPull } from "./ctr_pull.ts";

const MiB = 1 << 20;
const { values } = parseArgs({
  options: {
    mib: { type: "string", default: "1024" },
    layers: { type: "string", default: "4" },
    "rate-mib": { type: "string", default: "100" },
    containerd: { type: "string", default: CONTAINERD_VERSIONS[0].version },
  },
});
const version = CONTAINERD_VERSIONS.find((v) => v.version === values.containerd);
if (!version) {
  console.error(
    `--containerd ${values.containerd} is not one of ` +
      `${CONTAINERD_VERSIONS.map((v) => v.version).join(", ")}; pick one of those.`,
  );
  Deno.exit(2);
}
const layers = Number(values.layers);
const rateMiB = Number(values["rate-mib"]);

interface Outcome {
  seconds: number;
  bytes: number;
  attempts: number | string;
  result: string;
  /** Why each failed attempt ended, after how long. */
  cuts?: string[];
}

interface Case {
  name: string;
  /** Faults on the way to the registry during the case, besides the rate cap. */
  stallLayer?: boolean;
  run(containerd: Containerd, reference: string): Promise<Omit<Outcome, "seconds" | "bytes">>;
}

await ensureDebianPackages([...STACK_PACKAGES]);
const binaries = await obtainContainerd(version);
await using registry = await startRegistry();
await using proxy = await startFaultProxy(registry.url);
console.log(`big image benchmark, containerd ${version.version}, ${new Date().toISOString()}`);
const image = await pushImage(registry, {
  repository: "bench/big",
  layers,
  layerBytes: Math.floor(Number(values.mib) * MiB / layers),
});
const reference = image.reference(proxy.host);

function fetchWith(flags: string[]): Case["run"] {
  return async (containerd, ref) => {
    const run = await runProgram([...jsonFetchArgs(containerd.socket), ...flags, ref]);
    const summary = run.summary?.images[0];
    if (!summary) throw new Error(`fetch ${flags.join(" ")} printed no summary:\n${run.stderr}`);
    return {
      attempts: summary.attempts,
      result: summary.status === "failed" ? `failed (${summary.failure})` : summary.status,
      cuts: run.events.filter((e) => e.msg === "pull attempt failed")
        .map((e) => `attempt ${e.attempt} after ${e.duration}: ${e.error}`),
    };
  };
}

async function ctrPull(
  containerd: Containerd,
  ref: string,
): Promise<Omit<Outcome, "seconds" | "bytes">> {
  const error = await ctrImagesPull(binaries.ctr, containerd.socket, ref);
  return { attempts: "-", result: error === undefined ? "pulled" : `failed: ${error}` };
}

const shortAttempts = [
  "--initial-pull-attempt-timeout",
  "1s",
  "--max-pull-attempt-timeout",
  "1s",
];
const cases: Case[] = [
  { name: "ctr images pull (reference)", run: ctrPull },
  { name: "fetch, default flags", run: fetchWith([]) },
  { name: "fetch, 1s attempts (< the unpack)", run: fetchWith(shortAttempts) },
  { name: "fetch, last layer stalls midway", stallLayer: true, run: fetchWith([]) },
];

async function measure(c: Case): Promise<Outcome> {
  await using containerd = await startContainerd({
    registryHosts: [registry.host, proxy.host],
    binary: binaries.containerd,
    ctrBinary: binaries.ctr,
  });
  const last = image.layers.at(-1)!;
  proxy.setFaults({
    bandwidthBytesPerSecond: rateMiB * MiB,
    ...c.stallLayer
      ? {
        stall: { count: 1, afterBytes: Math.floor(last.size / 2), match: new RegExp(last.digest) },
      }
      : {},
  });
  proxy.resetCounters();
  const started = performance.now();
  const outcome = await c.run(containerd, reference);
  const seconds = (performance.now() - started) / 1000;
  proxy.setFaults({});
  return { ...outcome, seconds, bytes: proxy.bytesServed };
}

function report(image: PushedImage, rows: Array<[string, Outcome]>): void {
  const transfer = image.sizeBytes / (rateMiB * MiB);
  console.log(
    `\n${(image.sizeBytes / MiB).toFixed(0)} MiB in ${image.layers.length} layers at ` +
      `${rateMiB} MiB/s (raw transfer ${transfer.toFixed(1)} s)`,
  );
  console.log(
    `${"case".padEnd(36)}${"wall s".padStart(8)}${"vs ctr".padStart(8)}` +
      `${"registry".padStart(10)}${"attempts".padStart(10)}  result`,
  );
  const reference = rows[0][1].seconds;
  for (const [name, o] of rows) {
    console.log(
      `${name.padEnd(36)}${o.seconds.toFixed(1).padStart(8)}` +
        `${`${(o.seconds / reference).toFixed(2)}x`.padStart(8)}` +
        `${`${(o.bytes / image.sizeBytes).toFixed(2)}x`.padStart(10)}` +
        `${String(o.attempts).padStart(10)}  ${o.result}`,
    );
  }
  for (const [name, o] of rows) {
    for (const cut of o.cuts ?? []) console.log(`  ${name}: ${cut}`);
  }
}

const rows: Array<[string, Outcome]> = [];
for (const c of cases) rows.push([c.name, await measure(c)]);
report(image, rows);
