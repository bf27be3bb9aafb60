/**
 * The waves coordinator at cluster scale over gRPC: a real `aggregate-metrics --waves` process,
 * 5,000 synthetic nodes × 100 images (default) asking `/Waves/Admit` through 4 gRPC channels as
 * fast as the server answers. A node asks for every image it lacks in one exchange and reports
 * the images admitted in its previous exchange as pulled, so the waves grow as fast as the
 * server decides. Meanwhile a probe asks every 100 ms for an image that is admissible at once and
 * times the answer. Prints decisions per second, the probe's median and p95 wait, and the
 * server's peak resident memory.
 *
 * Run: deno run -A bench/waves_grpc.ts [nodes] [images] [seconds]
 */
import { WavesClient } from "../lib/waves/client/waves_client.ts";
import { formatBytes } from "../lib/core/log.ts";
import { startMetricsServerProcess } from "../testing/metrics_server_process.ts";
import { admitRequest } from "../testing/admit_request.ts";

const NODES = Number(Deno.args[0] ?? 5_000);
const IMAGES = Number(Deno.args[1] ?? 100);
const SECONDS = Number(Deno.args[2] ?? 60);
const CHANNELS = 4;

async function rss(pid: number): Promise<{ now: string; peak: string }> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(status)![1]) * 1024;
  return { now: formatBytes(kb("VmRSS")), peak: formatBytes(kb("VmHWM")) };
}

await using server = await startMetricsServerProcess({ args: ["--waves", "--fanout", "4"] });
const pid = server.process.pid;
const endpoint = `127.0.0.1:${server.grpcPort}`;
console.log(`waves over gRPC: ${NODES} nodes x ${IMAGES} images, ${CHANNELS} channels, fanout 4`);
console.log(`server idle: RSS ${(await rss(pid)).now}`);

const images = Array.from({ length: IMAGES }, (_, i) => `registry.example.com/team/svc-${i}:v1`);
const nodes = Array.from({ length: NODES }, (_, n) => `ip-10-0-${n >> 8}-${n & 255}.internal`);
/** Per node: images it has, and those admitted in its last exchange (reported next time). */
const have = nodes.map(() => new Set<string>());
const admitted = nodes.map(() => [] as string[]);
const finished = nodes.map(() => false);
const never = new AbortController().signal;
// The clients are never closed gracefully: a GOAWAY can abort a Deno HTTP/2 server
// (denoland/deno#36788; see bench/README.md).
const channels = Array.from(
  { length: CHANNELS },
  () => new WavesClient({ endpoint, gracefulClose: false }),
);

let decisions = 0, exchanges = 0, next = 0, done = 0;
const start = performance.now();
const deadline = start + SECONDS * 1000;
await Promise.all(channels.map(async (client) => {
  while (done < NODES && performance.now() < deadline) {
    const n = next++ % NODES;
    if (finished[n]) continue;
    const pulled = admitted[n];
    for (const image of pulled) have[n].add(image);
    const want = images.filter((image) => !have[n].has(image));
    const answer = await client.admit(admitRequest(nodes[n], { want, pulled }), never);
    admitted[n] = want.filter((_, i) => answer.decisions[i].pull);
    if (want.length === 0) {
      finished[n] = true;
      done++;
    }
    decisions += want.length;
    exchanges++;
  }
}));
const seconds = (performance.now() - start) / 1000;

// The probe, after the load, and during a second load phase below.
async function probe(count: number): Promise<number[]> {
  using client = new WavesClient({ endpoint, gracefulClose: false });
  const waits: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await client.admit(
      admitRequest(`probe-${i}`, { want: [`probe.example/fresh-${i}:v1`] }),
      never,
    );
    waits.push(performance.now() - t0);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return waits.sort((a, b) => a - b);
}

// Load again (every node asks for everything it lacks, or renews), with the probe alongside.
let loading = true;
const background = Promise.all(channels.map(async (client) => {
  while (loading) {
    const n = next++ % NODES;
    const want = images.filter((image) => !have[n].has(image)).slice(0, 100);
    await client.admit(
      admitRequest(nodes[n], { want: want.length ? want : images.slice(0, 10) }),
      never,
    );
  }
}));
const waits = await probe(50);
loading = false;
await background;
const pct = (p: number) => waits[Math.min(waits.length - 1, Math.floor(waits.length * p))];
const memory = await rss(pid);

console.log(
  `load: ${decisions} decisions in ${exchanges} exchanges, ${seconds.toFixed(1)} s = ` +
    `${Math.round(decisions / seconds).toLocaleString("en")} decisions/s ` +
    `(${Math.round(exchanges / seconds)} exchanges/s; client encoding in this process included)`,
);
console.log(
  `nodes with every image: ${have.filter((h) => h.size === IMAGES).length} of ${NODES}` +
    (done < NODES ? ` (stopped after ${SECONDS} s)` : ""),
);
console.log(
  `an admissible image's wait, under load: median ${pct(0.5).toFixed(1)} ms, ` +
    `p95 ${pct(0.95).toFixed(1)} ms (${waits.length} probes)`,
);
console.log(`server: RSS ${memory.now}, peak RSS ${memory.peak}`);
// SIGKILL: a graceful stop sends this process's clients a GOAWAY, which can abort a Deno HTTP/2
// client (denoland/deno#36788).
await server.stop("SIGKILL");
Deno.exit(0);
