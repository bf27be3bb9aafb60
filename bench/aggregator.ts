/**
 * The aggregator at its design size: 5,000 nodes x 100 images (10% of the pulls retried once),
 * streamed over gRPC to a real `aggregate-metrics` process by 4 concurrent clients. Prints the
 * ingest rate, the server's peak resident memory (VmHWM) and the response times and sizes of
 * `/metrics` (JSON and Prometheus), `/summary` and `/`.
 *
 * Run: deno run -A bench/aggregator.ts [nodes] [images]
 */
import * as grpc from "@grpc/grpc-js";
import { formatBytes } from "../lib/core/log.ts";
import { type MetricsResult, resultToWire } from "../lib/metrics/protocol.ts";
import { MetricsService } from "../lib/metrics/protocol.ts";
import { startMetricsServerProcess } from "../testing/metrics_server_process.ts";

const NODES = Number(Deno.args[0] ?? 5_000);
const IMAGES = Number(Deno.args[1] ?? 100);
const CLIENTS = 4;
const BATCH = 5_000;

function* results(): Generator<MetricsResult> {
  const started = Math.floor(Date.now() / 1000);
  for (let n = 0; n < NODES; n++) {
    const node = `ip-10-0-${Math.floor(n / 250)}-${n % 250}.eu-west-1.compute.internal`;
    for (let i = 0; i < IMAGES; i++) {
      const image = `registry.example.com/platform/service-${i}:v1.${i % 7}.0`;
      const base = { node, image, startedAt: started, imagesTotal: IMAGES, instance: "bench" };
      if ((n + i) % 10 === 0) {
        yield {
          ...base,
          attemptId: crypto.randomUUID(),
          outcome: "attempt-failed",
          attempt: 1,
          durationMs: 30_000,
          error: "the attempt timed out after 30s",
        };
      }
      yield {
        ...base,
        attemptId: crypto.randomUUID(),
        outcome: (n * 3 + i) % 17 === 0 ? "present" : "pulled",
        attempt: (n + i) % 10 === 0 ? 2 : 1,
        durationMs: 500 + ((n * 7919 + i * 104_729) % 60_000),
        sizeBytes: (i + 1) * 3_000_000,
        imageRef: `sha256:${i.toString(16).padStart(64, "0")}`,
      };
    }
  }
}

function send(client: grpc.Client, batch: MetricsResult[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const call = client.makeClientStreamRequest(
      "/Metrics/Submit",
      (value: unknown) => MetricsService.service.Submit.requestSerialize(value),
      (buffer: Buffer) => buffer,
      new grpc.Metadata(),
      {},
      (error: grpc.ServiceError | null) => error ? reject(error) : resolve(),
    );
    for (const result of batch) call.write(resultToWire(result));
    call.end();
  });
}

async function timed(url: string, headers: Record<string, string> = {}) {
  const start = performance.now();
  const response = await fetch(url, { headers });
  const body = await response.arrayBuffer();
  return { ms: Math.round(performance.now() - start), bytes: body.byteLength };
}

async function peakRss(pid: number): Promise<string> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return formatBytes(Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) * 1024);
}

await using server = await startMetricsServerProcess({ args: ["--max-results", "2000000"] });
// deno run spawns the program directly, so this is the server's own process.
const pid = server.process.pid;
console.log(`aggregator bench: ${NODES} nodes x ${IMAGES} images, ${CLIENTS} gRPC clients`);
console.log(`server idle: peak RSS ${await peakRss(pid)}`);

const clients = Array.from(
  { length: CLIENTS },
  () => new grpc.Client(`127.0.0.1:${server.grpcPort}`, grpc.credentials.createInsecure()),
);
const source = results();
let sent = 0;
const start = performance.now();
await Promise.all(clients.map(async (client) => {
  while (true) {
    const batch: MetricsResult[] = [];
    // Not for-of: breaking out of it would close the shared generator.
    for (let next = source.next(); !next.done; next = source.next()) {
      batch.push(next.value);
      if (batch.length === BATCH) break;
    }
    if (batch.length === 0) return;
    await send(client, batch);
    sent += batch.length;
  }
}));
const seconds = (performance.now() - start) / 1000;
// The clients stay open until the process ends: closing them gracefully sends an HTTP/2 GOAWAY,
// which can abort a Deno HTTP/2 server (denoland/deno#36788; see bench/README.md).
console.log(
  `ingest: ${sent} results in ${seconds.toFixed(1)} s = ${
    Math.round(sent / seconds)
  } results/s (generation and encoding in this process included)`,
);
console.log(`server after ingest: peak RSS ${await peakRss(pid)}`);

for (
  const [name, path, headers] of [
    ["/summary", "/summary", {}],
    ["/summary (again, cached)", "/summary", {}],
    ["/summary?grid=1", "/summary?grid=1", {}],
    ["/ (HTML report)", "/", {}],
    ["/metrics (JSON)", "/metrics", {}],
    ["/metrics (Prometheus)", "/metrics", { accept: "text/plain;version=0.0.4" }],
  ] as const
) {
  const { ms, bytes } = await timed(server.url + path, headers);
  console.log(`${name.padEnd(26)} ${String(ms).padStart(6)} ms ${formatBytes(bytes).padStart(10)}`);
}
console.log(`server at the end: peak RSS ${await peakRss(pid)}`);
await server.stop("SIGTERM");
Deno.exit(0);
