/**
 * The submitter against real servers. Each server runs in a process of its own and is stopped
 * with SIGKILL, and the submitters end their connections without a GOAWAY: an HTTP/2 GOAWAY
 * received by a Deno process can abort it (denoland/deno#36788), and here that process would be
 * the test runner.
 */
import assert from "node:assert/strict";
import { freePort } from "../../../testing/stack/free_port.ts";
import { waitUntil } from "../../../testing/stack/wait_until.ts";
import {
  type MetricsServerProcess,
  startMetricsServerProcess,
} from "../../../testing/metrics_server_process.ts";
import type { ServerAuth } from "../../core/bearer_token.ts";
import { Logger } from "../../core/log.ts";
import { startMetricsServer } from "../server/server.ts";
import { MetricsStore } from "../server/store.ts";
import type { MetricsResult, MetricsResultJson } from "../protocol.ts";
import type { MetricsSummary } from "../server/summary.ts";
import { MetricsSubmitter, type MetricsSubmitterOptions } from "./submitter.ts";

const quiet = new Logger({ write: () => {} });

function sample(index: number, extra: Partial<MetricsResult> = {}): MetricsResult {
  return {
    attemptId: `attempt-${index}`,
    startedAt: 1_700_000_000,
    image: `reg/image-${index}:1`,
    node: "n1",
    outcome: "pulled",
    attempt: 1,
    durationMs: 100,
    ...extra,
  };
}

function submitterFor(
  port: number,
  options: Partial<MetricsSubmitterOptions> = {},
): MetricsSubmitter {
  return new MetricsSubmitter({
    endpoint: `127.0.0.1:${port}`,
    logger: quiet,
    gracefulClose: false,
    ...options,
  });
}

async function storedIds(server: MetricsServerProcess): Promise<string[]> {
  const response = await fetch(`${server.url}/metrics`);
  const results = await response.json() as MetricsResultJson[];
  return results.map((r) => `${r.attempt_id} ${r.outcome}`).sort();
}

async function summaryOf(server: MetricsServerProcess): Promise<MetricsSummary> {
  const response = await fetch(`${server.url}/summary`);
  return await response.json() as MetricsSummary;
}

const ids = (from: number, to: number, outcome = "pulled") =>
  Array.from({ length: to - from + 1 }, (_, i) => `attempt-${from + i} ${outcome}`).sort();

Deno.test("results are delivered as they come and acknowledged by batch", async () => {
  await using server = await startMetricsServerProcess();
  const submitter = submitterFor(server.grpcPort, { batchSize: 3, batchWindowMs: 5_000 });
  submitter.submit(sample(1));
  // The server sees a result as soon as it is written, before its stream is acknowledged.
  assert.ok(await waitUntil(async () => (await storedIds(server)).length === 1));
  for (let i = 2; i <= 10; i++) submitter.submit(sample(i));
  assert.deepEqual(await submitter.flush(5_000), {
    delivered: 10,
    undelivered: 0,
    dropped: 0,
    rejected: 0,
  });
  assert.deepEqual(await storedIds(server), ids(1, 10));
});

Deno.test("while the server is away, results wait and are delivered when it comes", async () => {
  const port = freePort();
  const submitter = submitterFor(port, {
    batchWindowMs: 50,
    initialBackoffMs: 50,
    maxBackoffMs: 200,
  });
  const started = Date.now();
  for (let i = 1; i <= 20; i++) submitter.submit(sample(i));
  assert.ok(Date.now() - started < 50, "submit does not wait for the server");
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.equal(submitter.report.undelivered, 20);
  await using server = await startMetricsServerProcess({ grpcPort: port });
  const report = await submitter.flush(10_000);
  assert.deepEqual([report.delivered, report.undelivered], [20, 0]);
  assert.deepEqual(await storedIds(server), ids(1, 20));
});

Deno.test("a restarted server gets every result again, each once", async () => {
  const port = freePort();
  let server = await startMetricsServerProcess({ grpcPort: port });
  const submitter = submitterFor(port, {
    batchWindowMs: 50,
    initialBackoffMs: 50,
    maxBackoffMs: 200,
  });
  try {
    for (let i = 1; i <= 5; i++) submitter.submit(sample(i));
    assert.ok(await waitUntil(() => submitter.report.delivered === 5, { timeoutMs: 5_000 }));
    await server.stop("SIGKILL");
    for (let i = 6; i <= 8; i++) submitter.submit(sample(i));
    await new Promise((resolve) => setTimeout(resolve, 300));
    server = await startMetricsServerProcess({ grpcPort: port });
    submitter.submit(sample(9));
    const report = await submitter.flush(10_000);
    assert.deepEqual([report.delivered, report.undelivered], [9, 0]);
    assert.deepEqual(await storedIds(server), ids(1, 9));
  } finally {
    submitter.close();
    await server.stop("SIGKILL");
  }
});

Deno.test("a result the server refuses is given up alone; the others get through", async () => {
  await using server = await startMetricsServerProcess();
  const submitter = submitterFor(server.grpcPort, { batchWindowMs: 50, initialBackoffMs: 10 });
  submitter.submit(sample(1));
  submitter.submit(sample(2, { image: "" }));
  submitter.submit(sample(3));
  assert.deepEqual(await submitter.flush(10_000), {
    delivered: 2,
    undelivered: 1,
    dropped: 0,
    rejected: 1,
  });
  assert.deepEqual(await storedIds(server), ["attempt-1 pulled", "attempt-3 pulled"]);
});

Deno.test("a full buffer drops new results and says so", async () => {
  const submitter = submitterFor(freePort(), { maxBuffered: 3 });
  for (let i = 1; i <= 5; i++) submitter.submit(sample(i));
  const report = await submitter.flush(200);
  assert.deepEqual(report, { delivered: 0, undelivered: 5, dropped: 2, rejected: 0 });
});

function snapshot(index: number, durationMs: number): MetricsResult {
  return sample(index, { outcome: "in-progress", durationMs, bytesReceived: durationMs * 1000 });
}

Deno.test("in-progress results reach a server that keeps them, the latest one per attempt", async () => {
  await using server = await startMetricsServerProcess();
  const submitter = submitterFor(server.grpcPort, { batchWindowMs: 50 });
  const downloading = async () => (await summaryOf(server)).downloading;
  submitter.submit(snapshot(1, 1_000));
  submitter.submit(snapshot(1, 2_000));
  assert.ok(await waitUntil(async () => (await downloading()).length === 1));
  submitter.submit(snapshot(1, 3_000));
  assert.ok(
    await waitUntil(async () => (await downloading())[0]?.received_bytes === 3_000_000),
  );
  assert.equal((await downloading()).length, 1, "one snapshot per attempt, the latest");
  submitter.submit(sample(1, { durationMs: 4_000 }));
  assert.deepEqual(await submitter.flush(5_000), {
    delivered: 1,
    undelivered: 0,
    dropped: 0,
    rejected: 0,
  });
  assert.deepEqual(await downloading(), []);
  assert.deepEqual(await storedIds(server), ["attempt-1 pulled"]);
});

/** Starts `testing/old_metrics_server.ts` and collects what it stored and refused. */
async function startOldServer(port: number, claims: boolean) {
  const process = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../../../testing/old_metrics_server.ts", import.meta.url).pathname,
      String(port),
      ...(claims ? ["claims"] : []),
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const stored = new Map<string, string>();
  let snapshots = 0;
  let listening = false;
  const reading = (async () => {
    let buffered = "";
    for await (const chunk of process.stdout.pipeThrough(new TextDecoderStream())) {
      buffered += chunk;
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      for (const line of lines) {
        const [word, id, outcome] = line.split(" ");
        if (word === "listening") listening = true;
        if (word === "snapshot") snapshots++;
        if (word === "stored") stored.set(id, outcome);
      }
    }
  })();
  assert.ok(
    await waitUntil(() => listening, { timeoutMs: 30_000 }),
    "the old server did not start",
  );
  return {
    stored,
    snapshots: () => snapshots,
    close: async () => {
      process.kill("SIGKILL");
      await process.status;
      await reading;
    },
  };
}

for (const claims of [false, true]) {
  Deno.test(
    claims
      ? "a server that refuses in-progress results it claimed to keep loses no attempt"
      : "an older server gets no in-progress results and every attempt",
    async () => {
      const port = freePort();
      const old = await startOldServer(port, claims);
      const submitter = submitterFor(port, { batchWindowMs: 50, initialBackoffMs: 10 });
      try {
        submitter.submit(sample(1));
        submitter.submit(snapshot(2, 1_000));
        await new Promise((resolve) => setTimeout(resolve, 200));
        submitter.submit(snapshot(3, 1_000));
        submitter.submit(sample(4));
        submitter.submit(snapshot(3, 2_000));
        submitter.submit(sample(2));
        submitter.submit(sample(3));
        assert.deepEqual(await submitter.flush(10_000), {
          delivered: 4,
          undelivered: 0,
          dropped: 0,
          rejected: 0,
        });
        assert.deepEqual([...old.stored].sort(), [
          ["attempt-1", "OUTCOME_PULLED"],
          ["attempt-2", "OUTCOME_PULLED"],
          ["attempt-3", "OUTCOME_PULLED"],
          ["attempt-4", "OUTCOME_PULLED"],
        ]);
        if (claims) assert.ok(old.snapshots() >= 1, "the snapshots were sent, and refused");
        else assert.equal(old.snapshots(), 0, "no snapshot was sent");
      } finally {
        submitter.close();
        await old.close();
      }
    },
  );
}

Deno.test("a server that does not let the node report gets one call, and one error line", async () => {
  let calls = 0;
  const forbidding: ServerAuth = {
    mode: "test",
    node: () => {
      calls++;
      return Promise.resolve({ refused: "forbidden", message: "not this node's token" });
    },
    reader: () => Promise.resolve(undefined),
  };
  // In this process: the submitter ends its connection without a GOAWAY (gracefulClose: false).
  await using server = await startMetricsServer({
    store: new MetricsStore(),
    logger: quiet,
    grpcPort: 0,
    httpPort: 0,
    hostname: "127.0.0.1",
    auth: forbidding,
  });
  const lines: string[] = [];
  const submitter = submitterFor(server.grpcPort, {
    logger: new Logger({ write: (line) => lines.push(line), format: "json" }),
    batchWindowMs: 20,
    initialBackoffMs: 10,
    maxBackoffMs: 20,
  });
  submitter.submit(sample(1));
  submitter.submit(sample(2));
  const report = await submitter.flush(3_000);
  submitter.submit(sample(3));
  assert.deepEqual(report, { delivered: 0, undelivered: 2, dropped: 0, rejected: 0 });
  assert.equal(calls, 1, "no retry");
  const logged = lines.map((line) => JSON.parse(line));
  assert.deepEqual(logged.map((l) => `${l.level} ${l.msg}`), [
    "error the metrics server does not let this node report; sending it nothing more this run",
  ]);
  assert.match(logged[0].error, /not this node's token/);
});
