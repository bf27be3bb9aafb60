/**
 * What a flood of admissions does to a real `aggregate-metrics --waves`: 20 requests naming
 * 20,000 unknown images each (3 MB, under gRPC's 4 MB limit), then 20 requests naming 1,000
 * unknown images in each of their 6 lists (within the per-list bound, past the images one server
 * may know). Prints how each was answered and the server's resident memory before, after and at
 * its peak. Before the bounds of issue 22, the first flood was accepted whole and took the server
 * to 1.6 GiB.
 *
 * Run: deno run -A bench/waves_flood.ts
 */
import * as grpc from "@grpc/grpc-js";
import { formatBytes } from "../lib/core/log.ts";
import { WavesClient } from "../lib/waves/client/waves_client.ts";
import type { WireAdmitRequest } from "../lib/waves/protocol.ts";
import { admitRequest } from "../testing/admit_request.ts";
import { startMetricsServerProcess } from "../testing/metrics_server_process.ts";

async function rss(pid: number): Promise<{ now: number; peak: number }> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(status)![1]) * 1024;
  return { now: kb("VmRSS"), peak: kb("VmHWM") };
}

const names = (prefix: string, count: number) =>
  Array.from({ length: count }, (_, i) => `flood.example.com/${prefix}/image-${i}:v1`);

await using server = await startMetricsServerProcess({ args: ["--waves"] });
const pid = server.process.pid;
using client = new WavesClient({ endpoint: `127.0.0.1:${server.grpcPort}`, gracefulClose: false });
const never = new AbortController().signal;
const idle = await rss(pid);

async function flood(label: string, request: (i: number) => WireAdmitRequest): Promise<void> {
  const answers = new Map<string, number>();
  for (let i = 0; i < 20; i++) {
    const key = await client.admit(request(i), never).then(
      () => "answered",
      (error) => `${grpc.status[error.code] ?? error.code}: ${error.details ?? error.message}`,
    );
    answers.set(key, (answers.get(key) ?? 0) + 1);
  }
  console.log(`${label}:`);
  for (const [answer, count] of answers) console.log(`  ${count} × ${answer}`);
}

await flood(
  "20 requests × 20,000 unknown names in want",
  (i) => admitRequest(`flood-${i}`, { want: names(`a${i}`, 20_000) }),
);
await flood("20 requests × 6 lists × 1,000 unknown names", (i) => {
  const list = (field: string) => names(`b${i}-${field}`, 1_000);
  return admitRequest(`flood-${i}`, {
    want: list("want"),
    progressed: list("progressed"),
    pulled: list("pulled"),
    present: list("present"),
    failed: list("failed").map((image) => ({ image, rate_limited: false })),
    released: list("released"),
  });
});
const after = await rss(pid);
const health = await fetch(`${server.url}/healthz`);
await health.body?.cancel();
console.log(
  `server: RSS idle ${formatBytes(idle.now)}, after ${formatBytes(after.now)}, ` +
    `peak ${formatBytes(after.peak)}; /healthz ${health.status}`,
);
// SIGKILL: a graceful stop sends this process's client a GOAWAY (denoland/deno#36788).
await server.stop("SIGKILL");
Deno.exit(0);
