/**
 * The aggregator across many runs, as issue 22 measured it: 20 runs of 1,000 nodes x 50 images
 * (10% of the pulls retried once: 1.1 M results) streamed over gRPC `/Metrics/Submit` to a real
 * `aggregate-metrics --state-file` process, each run with its own `run_id` per node; then the
 * process is SIGKILLed and started again from its state file. Prints, side by side before and
 * after the restart: the server's peak RSS (VmHWM), the state file's size, the results held and
 * refused, and the response times of `/summary`, `/summary?grid=1` and `/`; and how long the
 * restart took until the server answered again (restore included).
 *
 * Run: deno run -A bench/store_scale.ts [runs] [nodes] [images] [server V8 flags]
 * (e.g. `--max-old-space-size=256`, passed to the server as DENO_V8_FLAGS)
 */
import * as grpc from "@grpc/grpc-js";
import { formatBytes } from "../lib/core/log.ts";
import { type MetricsResult, MetricsService, resultToWire } from "../lib/metrics/protocol.ts";
import { startMetricsServerProcess } from "../testing/metrics_server_process.ts";
import { freePort } from "../testing/stack/free_port.ts";

const RUNS = Number(Deno.args[0] ?? 20);
const NODES = Number(Deno.args[1] ?? 1_000);
const IMAGES = Number(Deno.args[2] ?? 50);
const V8_FLAGS = Deno.args[3];
const CLIENTS = 4;
const BATCH = 5_000;

/** One run of every node: a first attempt that fails for 10% of the pulls, then the final one. */
function* runResults(run: number): Generator<MetricsResult> {
  const started = 1_780_000_000 + run * 3_600;
  for (let n = 0; n < NODES; n++) {
    const node = `ip-10-0-${Math.floor(n / 250)}-${n % 250}.eu-west-1.compute.internal`;
    const runId = crypto.randomUUID();
    for (let i = 0; i < IMAGES; i++) {
      const image = `registry.example.com/platform/service-${i}:v1.${i % 7}.0`;
      const base = { node, image, imagesTotal: IMAGES, instance: "bench", runId };
      const retried = (n + i + run) % 10 === 0;
      if (retried) {
        yield {
          ...base,
          attemptId: crypto.randomUUID(),
          startedAt: started + i,
          outcome: "attempt-failed",
          attempt: 1,
          durationMs: 30_000,
          error: "the attempt timed out after 30s",
        };
      }
      yield {
        ...base,
        attemptId: crypto.randomUUID(),
        startedAt: started + i + (retried ? 40 : 0),
        outcome: (n * 3 + i) % 17 === 0 ? "present" : "pulled",
        attempt: retried ? 2 : 1,
        durationMs: 500 + ((n * 7919 + i * 104_729 + run) % 60_000),
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

/** Streams one run through `CLIENTS` concurrent streams; returns how many results were sent. */
async function sendRun(clients: grpc.Client[], run: number): Promise<number> {
  const source = runResults(run);
  let sent = 0;
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
  return sent;
}

async function memory(pid: number): Promise<{ peak: number; now: number }> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)![1]);
  return { peak: kib("VmHWM") * 1024, now: kib("VmRSS") * 1024 };
}

async function timed(url: string): Promise<{ ms: number; bytes: number; body: Uint8Array }> {
  const start = performance.now();
  const body = new Uint8Array(await (await fetch(url)).arrayBuffer());
  return { ms: Math.round(performance.now() - start), bytes: body.byteLength, body };
}

/** The figures of one server process: memory, state file, store, and its views' times. */
async function measure(url: string, pid: number, stateFile: string) {
  const summary = await timed(`${url}/summary`);
  const parsed = JSON.parse(new TextDecoder().decode(summary.body));
  const grid = await timed(`${url}/summary?grid=1`);
  const page = await timed(`${url}/`);
  return {
    memory: await memory(pid),
    stateBytes: (await Deno.stat(stateFile)).size,
    held: parsed.results as number,
    refused: parsed.refused_full as number,
    compacted: parsed.runs_compacted as number,
    progress: `${parsed.progress.nodes} nodes, ${parsed.progress.done} done, ` +
      `${parsed.progress.pending} pending`,
    summaryMs: summary.ms,
    gridMs: grid.ms,
    pageMs: page.ms,
    pageBytes: page.bytes,
  };
}

const dir = await Deno.makeTempDir({ prefix: "store-scale-" });
const stateFile = `${dir}/results.ndjson`;
const grpcPort = freePort(), httpPort = freePort();
const args = ["--state-file", stateFile];
const env: Record<string, string> = V8_FLAGS ? { DENO_V8_FLAGS: V8_FLAGS } : {};
try {
  console.log(
    `store scale: ${RUNS} runs of ${NODES} nodes x ${IMAGES} images, ${CLIENTS} clients` +
      (V8_FLAGS ? `, server V8 flags ${V8_FLAGS}` : ""),
  );
  const first = await startMetricsServerProcess({ grpcPort, httpPort, args, env });
  const clients = Array.from(
    { length: CLIENTS },
    () => new grpc.Client(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure()),
  );
  let sent = 0;
  const started = performance.now();
  for (let run = 0; run < RUNS; run++) {
    sent += await sendRun(clients, run);
    if ((run + 1) % 5 === 0 || run === 0) {
      const { peak, now } = await memory(first.process.pid);
      console.log(
        `  after run ${String(run + 1).padStart(2)}: ${sent} results sent, server RSS ` +
          `${formatBytes(now)}, peak ${formatBytes(peak)}`,
      );
    }
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(
    `ingest: ${sent} results in ${seconds.toFixed(1)} s = ${Math.round(sent / seconds)}/s`,
  );
  const before = await measure(first.url, first.process.pid, stateFile);
  // The clients stay open: a graceful close sends a GOAWAY (see bench/README.md).
  await first.stop("SIGKILL");

  const restart = performance.now();
  await using second = await startMetricsServerProcess({ grpcPort, httpPort, args, env });
  const restartMs = Math.round(performance.now() - restart);
  const restored = /"msg":"restored the state file".*?"ms":(\d+)/.exec(second.stderr())?.[1];
  const after = await measure(second.url, second.process.pid, stateFile);

  const rows: [string, (m: typeof before) => string][] = [
    ["peak RSS (VmHWM)", (m) => formatBytes(m.memory.peak)],
    ["RSS now", (m) => formatBytes(m.memory.now)],
    ["state file", (m) => formatBytes(m.stateBytes)],
    ["results held", (m) => String(m.held)],
    ["results refused", (m) => String(m.refused)],
    ["runs compacted", (m) => String(m.compacted)],
    ["progress", (m) => m.progress],
    ["/summary", (m) => `${m.summaryMs} ms`],
    ["/summary?grid=1", (m) => `${m.gridMs} ms`],
    ["/ (HTML report)", (m) => `${m.pageMs} ms, ${formatBytes(m.pageBytes)}`],
  ];
  console.log(`\n${"".padEnd(20)}${"before SIGKILL".padEnd(34)}after restart`);
  for (const [name, get] of rows) {
    console.log(`${name.padEnd(20)}${get(before).padEnd(34)}${get(after)}`);
  }
  console.log(
    `\nrestart until /healthz answered: ${(restartMs / 1000).toFixed(1)} s ` +
      `(of which restoring the state file: ${restored ?? "?"} ms)`,
  );
  await second.stop("SIGTERM");
} finally {
  await Deno.remove(dir, { recursive: true });
}
Deno.exit(0);
