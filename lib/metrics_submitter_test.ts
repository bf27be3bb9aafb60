import assert from "node:assert/strict";
import { freePort } from "../tests/stack/free_port.ts";
import { waitUntil } from "../tests/stack/wait_until.ts";
import { Logger } from "./log.ts";
import type { MetricsResult } from "./metrics_result.ts";
import { type MetricsServer, startMetricsServer } from "./metrics_server.ts";
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
