/**
 * `aggregate-metrics` against gRPC clients we did not write, however they close: a Node.js
 * `@grpc/grpc-js` client (whose `close()` sends a GOAWAY) and Debian's Python `grpcio`, both
 * speaking only the original tool's protocol. The server runs with glibc's allocator perturbed
 * (`MALLOC_PERTURB_=165`), which makes denoland/deno#36788 abort it at the first GOAWAY it
 * receives unless the mitigation is in place: these tests fail at once without it.
 */
import assert from "node:assert/strict";
import type { MetricsResultJson } from "../lib/metrics/protocol.ts";
import {
  type MetricsServerProcess,
  startMetricsServerProcess,
} from "../testing/metrics_server_process.ts";
import {
  type NodeMetricsScenario,
  type PeerSubmitReport,
  runNodeMetricsClient,
  runPythonMetricsClient,
} from "../testing/grpc_peers/peers.ts";

const PERTURBED = { MALLOC_PERTURB_: "165" };

async function results(server: MetricsServerProcess): Promise<MetricsResultJson[]> {
  const response = await fetch(`${server.url}/metrics`);
  assert.equal(response.status, 200, `/metrics answered ${response.status}`);
  return await response.json();
}

/** The server is up: /healthz answers, and the process has not exited. */
async function assertServing(server: MetricsServerProcess, after: string): Promise<void> {
  const response = await fetch(`${server.url}/healthz`).catch((error) => error as Error);
  if (!(response instanceof Response && response.ok)) {
    const exit = await Promise.race([
      server.process.status.then((s) => `exit ${s.code} signal ${s.signal}`),
      new Promise<string>((resolve) => setTimeout(() => resolve("still running"), 1_000)),
    ]);
    assert.fail(
      `the server stopped serving after ${after} (${exit}): ${response}\n` +
        server.stderr(),
    );
  }
  await response.body?.cancel();
}

/** Every acknowledged id is stored once; a cancelled one at most once; nothing else. */
function assertStoredOnce(stored: MetricsResultJson[], node: string, report: PeerSubmitReport) {
  const ids = stored.filter((r) => r.node === node).map((r) => String(r.attempt_id));
  assert.equal(new Set(ids).size, ids.length, `${node}: a result is stored twice`);
  const acknowledged = new Set(report.acknowledged);
  for (const id of acknowledged) assert.ok(ids.includes(id), `${node}: ${id} was lost`);
  const known = new Set([...report.acknowledged, ...report.cancelled]);
  assert.deepEqual(ids.filter((id) => !known.has(id)), [], `${node}: results nobody sent`);
}

Deno.test("aggregate-metrics, perturbed, serves a Node.js grpc-js client however it closes", async (t) => {
  await using server = await startMetricsServerProcess({ env: PERTURBED });
  const target = `127.0.0.1:${server.grpcPort}`;
  const scenarios: Array<[string, NodeMetricsScenario, number]> = [
    ["one call, then a graceful close", { kind: "one-call" }, 1],
    [
      "300 results in streams of 3 on one connection, then a graceful close",
      { kind: "many-streams", results: 300, perStream: 3 },
      300,
    ],
    ["a cancelled stream, then a graceful close", { kind: "cancel" }, 0],
    ["200 connections of churn, each closed gracefully", { kind: "churn", connections: 200 }, 200],
  ];
  const reports: Array<[string, PeerSubmitReport]> = [];
  for (const [name, scenario, acknowledged] of scenarios) {
    await t.step(name, async () => {
      const node = `node-js-${scenario.kind}`;
      const report = await runNodeMetricsClient(target, node, scenario);
      assert.equal(report.acknowledged.length, acknowledged, JSON.stringify(report));
      if (scenario.kind === "cancel") assert.equal(report.cancelled.length, 1);
      // The GOAWAY of the close reaches the server after the client's last call: let it land.
      await new Promise((resolve) => setTimeout(resolve, 200));
      await assertServing(server, name);
      assertStoredOnce(await results(server), node, report);
      reports.push([node, report]);
    });
  }
  await t.step("every result of every scenario is there once, at the end too", async () => {
    const stored = await results(server);
    for (const [node, report] of reports) assertStoredOnce(stored, node, report);
    const ids = stored.map((r) => r.attempt_id);
    assert.equal(new Set(ids).size, ids.length);
  });
});

Deno.test("aggregate-metrics, perturbed, stores a Python grpcio client's 7 fields by their names", async () => {
  await using server = await startMetricsServerProcess({ env: PERTURBED });
  const report = await runPythonMetricsClient(`127.0.0.1:${server.grpcPort}`, "python-node", 6);
  assert.equal(report.acknowledged.length, 6);
  await assertServing(server, "the Python client closed its channel");
  const stored = (await results(server)).filter((r) => r.node === "python-node");
  assert.equal(stored.length, 6, JSON.stringify(stored));
  const original = [
    "attempt_id",
    "started_at",
    "image",
    "error",
    "duration_ms",
    "node",
    "size_bytes",
  ] as const;
  for (const sent of report.sent!) {
    const got = stored.find((r) => r.attempt_id === sent.attempt_id);
    assert.ok(got, `${sent.attempt_id} was not stored`);
    for (const field of original) {
      // The original's JSON leaves an empty error out.
      assert.equal(got[field] ?? "", sent[field], `${field} of ${JSON.stringify(got)}`);
    }
    assert.equal(got.outcome, sent.error ? "attempt-failed" : "pulled", JSON.stringify(got));
  }
});
