import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { freePort } from "../tests/stack/free_port.ts";
import { waitUntil } from "../tests/stack/wait_until.ts";
import { Logger } from "./log.ts";
import type { MetricsResult } from "./metrics_result.ts";
import {
  type MetricsServer,
  MetricsService,
  SERVER_ID_METADATA_KEY,
  startMetricsServer,
} from "./metrics_server.ts";
import { MetricsStore } from "./metrics_store.ts";
import { MetricsSubmitter } from "./metrics_submitter.ts";

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

async function serve(grpcPort: number, store = new MetricsStore()): Promise<MetricsServer> {
  return await startMetricsServer({
    store,
    logger: quiet,
    grpcPort,
    httpPort: 0,
    hostname: "127.0.0.1",
  });
}

Deno.test("results are delivered as they come and acknowledged by batch", async () => {
  const port = freePort();
  const store = new MetricsStore();
  await using _ = await serve(port, store);
  const submitter = new MetricsSubmitter({
    endpoint: `127.0.0.1:${port}`,
    logger: quiet,
    batchSize: 3,
    batchWindowMs: 5_000,
  });
  submitter.submit(sample(1));
  // The server sees a result as soon as it is written, before its stream is acknowledged.
  assert.ok(await waitUntil(() => store.size === 1, { timeoutMs: 5_000 }));
  for (let i = 2; i <= 10; i++) submitter.submit(sample(i));
  assert.deepEqual(await submitter.flush(5_000), {
    delivered: 10,
    undelivered: 0,
    dropped: 0,
    rejected: 0,
  });
  assert.equal(store.size, 10);
});

Deno.test("while the server is away, results wait and are delivered when it comes", async () => {
  const port = freePort();
  const submitter = new MetricsSubmitter({
    endpoint: `127.0.0.1:${port}`,
    logger: quiet,
    batchWindowMs: 50,
    initialBackoffMs: 50,
    maxBackoffMs: 200,
  });
  const started = Date.now();
  for (let i = 1; i <= 20; i++) submitter.submit(sample(i));
  assert.ok(Date.now() - started < 50, "submit does not wait for the server");
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.equal(submitter.report.undelivered, 20);
  const store = new MetricsStore();
  await using _ = await serve(port, store);
  const report = await submitter.flush(10_000);
  assert.deepEqual([report.delivered, report.undelivered], [20, 0]);
  assert.equal(store.size, 20);
});

Deno.test("a restarted server gets every result again, each once", async () => {
  const port = freePort();
  let store = new MetricsStore();
  let server = await serve(port, store);
  const submitter = new MetricsSubmitter({
    endpoint: `127.0.0.1:${port}`,
    logger: quiet,
    batchWindowMs: 50,
    initialBackoffMs: 50,
    maxBackoffMs: 200,
  });
  try {
    for (let i = 1; i <= 5; i++) submitter.submit(sample(i));
    assert.ok(await waitUntil(() => submitter.report.delivered === 5, { timeoutMs: 5_000 }));
    await server.shutdown(100);
    for (let i = 6; i <= 8; i++) submitter.submit(sample(i));
    await new Promise((resolve) => setTimeout(resolve, 300));
    store = new MetricsStore();
    server = await serve(port, store);
    submitter.submit(sample(9));
    const report = await submitter.flush(10_000);
    assert.deepEqual([report.delivered, report.undelivered], [9, 0]);
    assert.deepEqual(
      [...store.results()].map((r) => r.attemptId).sort(),
      Array.from({ length: 9 }, (_, i) => `attempt-${i + 1}`).sort(),
    );
  } finally {
    submitter.close();
    await server.shutdown(100);
  }
});

Deno.test("a result the server refuses is given up alone; the others get through", async () => {
  const port = freePort();
  const store = new MetricsStore();
  await using _ = await serve(port, store);
  const submitter = new MetricsSubmitter({
    endpoint: `127.0.0.1:${port}`,
    logger: quiet,
    batchWindowMs: 50,
    initialBackoffMs: 10,
  });
  submitter.submit(sample(1));
  submitter.submit(sample(2, { image: "" }));
  submitter.submit(sample(3));
  assert.deepEqual(await submitter.flush(10_000), {
    delivered: 2,
    undelivered: 1,
    dropped: 0,
    rejected: 1,
  });
  assert.equal(store.size, 2);
});

Deno.test("a full buffer drops new results and says so", async () => {
  const submitter = new MetricsSubmitter({
    endpoint: `127.0.0.1:${freePort()}`,
    logger: quiet,
    maxBuffered: 3,
  });
  for (let i = 1; i <= 5; i++) submitter.submit(sample(i));
  const report = await submitter.flush(200);
  assert.deepEqual(report, { delivered: 0, undelivered: 5, dropped: 2, rejected: 0 });
});

function snapshot(index: number, durationMs: number): MetricsResult {
  return sample(index, { outcome: "in-progress", durationMs, bytesReceived: durationMs * 1000 });
}

Deno.test("in-progress results reach a server that keeps them, the latest one per attempt", async () => {
  const port = freePort();
  const store = new MetricsStore();
  await using _ = await serve(port, store);
  const submitter = new MetricsSubmitter({
    endpoint: `127.0.0.1:${port}`,
    logger: quiet,
    batchWindowMs: 50,
  });
  submitter.submit(snapshot(1, 1_000));
  submitter.submit(snapshot(1, 2_000));
  assert.ok(await waitUntil(() => store.inProgressCount === 1, { timeoutMs: 5_000 }));
  submitter.submit(snapshot(1, 3_000));
  assert.ok(
    await waitUntil(() => [...store.inProgress()][0]?.durationMs === 3_000, { timeoutMs: 5_000 }),
  );
  submitter.submit(sample(1, { durationMs: 4_000 }));
  assert.deepEqual(await submitter.flush(5_000), {
    delivered: 1,
    undelivered: 0,
    dropped: 0,
    rejected: 0,
  });
  assert.equal(store.inProgressCount, 0);
  assert.deepEqual([...store.results()].map((r) => [r.attemptId, r.outcome]), [
    ["attempt-1", "pulled"],
  ]);
});

/**
 * A server of ours from before `in-progress` results: it refuses their outcome as unknown, and
 * says nothing of them in its trailers, unless `claims` (a server that says it keeps them but
 * refuses them anyway, to drive the submitter's split-and-give-up path).
 */
async function startOldServer(port: number, claims: boolean) {
  const stored = new Map<string, string>();
  let snapshots = 0;
  const server = new grpc.Server();
  server.addService(MetricsService.service, {
    Submit: (
      call: grpc.ServerReadableStream<Record<string, unknown>, unknown>,
      callback: grpc.sendUnaryData<unknown>,
    ) => {
      const trailer = new grpc.Metadata();
      trailer.set(SERVER_ID_METADATA_KEY, "old-server");
      if (claims) trailer.set("x-metrics-accepts", "in-progress");
      let done = false;
      call.on("data", (message) => {
        if (done) return;
        if (message.outcome === "OUTCOME_IN_PROGRESS") {
          snapshots++;
          done = true;
          callback({
            code: grpc.status.INVALID_ARGUMENT,
            details: `result ${message.attempt_id} has an unknown outcome 5`,
            metadata: trailer,
          } as grpc.ServiceError, null);
          return;
        }
        stored.set(String(message.attempt_id), String(message.outcome));
      });
      call.on("end", () => {
        if (!done) callback(null, {}, trailer);
      });
    },
  });
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(
      `127.0.0.1:${port}`,
      grpc.ServerCredentials.createInsecure(),
      (error) => error ? reject(error) : resolve(),
    )
  );
  return { stored, snapshots: () => snapshots, close: () => server.forceShutdown() };
}

for (const claims of [false, true]) {
  Deno.test(
    claims
      ? "a server that refuses in-progress results it claimed to keep loses no attempt"
      : "an older server gets no in-progress results and every attempt",
    async () => {
      const port = freePort();
      const old = await startOldServer(port, claims);
      const submitter = new MetricsSubmitter({
        endpoint: `127.0.0.1:${port}`,
        logger: quiet,
        batchWindowMs: 50,
        initialBackoffMs: 10,
      });
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
        old.close();
      }
    },
  );
}
