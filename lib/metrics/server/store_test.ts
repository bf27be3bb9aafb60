import assert from "node:assert/strict";
import type { MetricsResult } from "../protocol.ts";
import { metricsResult } from "../../../testing/metrics_result.ts";
import { MetricsStore, StoreFullError } from "./store.ts";

const result = metricsResult;

Deno.test("results are kept once per attempt id, up to the cap", () => {
  const store = new MetricsStore({ maxResults: 2 });
  const first = result("n1", "a", "pulled");
  assert.equal(store.add(first), "added");
  assert.equal(store.add({ ...first }), "duplicate");
  store.add(result("n1", "b", "pulled"));
  assert.throws(() => store.add(result("n2", "a", "pulled")), StoreFullError);
  assert.equal(store.add({ ...first }), "duplicate", "re-sends are still accepted when full");
  assert.equal(store.size, 2);
  assert.equal(store.refusedFull, 1);
});

Deno.test("summary: done, failed, retrying and pending per node and per image", () => {
  const store = new MetricsStore({ clock: { now: () => 0, wallNow: () => 0 } });
  store.add(result("n1", "a", "pulled", { durationMs: 100, sizeBytes: 10 }));
  store.add(result("n1", "b", "present", { sizeBytes: 20 }));
  store.add(result("n2", "a", "attempt-failed", { error: "timeout" }));
  store.add(result("n2", "a", "pulled", { attempt: 2, durationMs: 300 }));
  store.add(result("n2", "b", "attempt-failed", { error: "timeout" }));
  store.add(result("n3", "a", "attempt-failed", { error: "denied" }));
  store.add(result("n3", "a", "failed", { attempt: 2, error: "denied" }));

  const summary = store.summary({ grid: true });
  assert.deepEqual(summary.progress, {
    nodes: 3,
    nodes_finished: 1,
    nodes_gone: 0,
    images: 2,
    expected: 6,
    done: 3,
    failed: 1,
    pending: 2,
    gone: 0,
    percent: 66.6,
    complete: false,
    downloading: 0,
    bytes_in_flight: 0,
    bytes_per_second: 0,
  });
  const [a, b] = summary.images;
  assert.deepEqual(
    [a.image, a.nodes_done, a.nodes_failed, a.nodes_pending, a.attempts, a.failed_attempts],
    ["a", 2, 1, 0, 5, 3],
  );
  assert.deepEqual([a.p50_ms, a.p95_ms, a.max_ms], [100, 300, 300]);
  assert.deepEqual(
    [b.image, b.nodes_done, b.nodes_failed, b.nodes_pending, b.nodes_retrying],
    ["b", 1, 0, 2, 1],
  );
  assert.deepEqual(
    summary.nodes.map((n) => [n.node, n.done, n.failed, n.pending, n.finished]),
    [["n1", 2, 0, 0, true], ["n2", 1, 0, 1, false], ["n3", 0, 1, 1, false]],
  );
  assert.deepEqual(summary.grid?.states, ["Pp", "Pr", "F."]);
  assert.deepEqual(summary.slowest.map((s) => [s.node, s.duration_ms]), [["n2", 300], ["n1", 100]]);
  assert.deepEqual(
    summary.errors.map((e) => [e.image, e.error, e.attempts, e.final_failures, e.nodes]),
    [["a", "denied", 2, 1, ["n3"]], ["a", "timeout", 1, 0, ["n2"]], ["b", "timeout", 1, 0, ["n2"]]],
  );
});

Deno.test("the latest final result decides; at the same second, having the image wins", () => {
  const store = new MetricsStore();
  store.add(result("n1", "a", "failed", { startedAt: 10, error: "x" }));
  store.add(result("n1", "a", "pulled", { startedAt: 20 }));
  assert.equal(store.cellState("n1", "a"), "pulled");
  store.add(result("n1", "a", "failed", { startedAt: 5, error: "late re-send of an old run" }));
  assert.equal(store.cellState("n1", "a"), "pulled");
  store.add(result("n2", "a", "pulled", { startedAt: 10 }));
  store.add(result("n2", "a", "failed", { startedAt: 10, error: "x" }));
  assert.equal(store.cellState("n2", "a"), "pulled");
  store.add(result("n3", "a", "pulled", { startedAt: 10 }));
  store.add(result("n3", "a", "failed", { startedAt: 30, error: "a later run failed" }));
  assert.equal(store.cellState("n3", "a"), "failed");
});

Deno.test("a run is complete when every node has finished every image", () => {
  const store = new MetricsStore();
  assert.equal(store.summary().progress.complete, false, "no node yet");
  store.add(result("n1", "a", "pulled"));
  store.add(result("n1", "b", "failed", { error: "x" }));
  const summary = store.summary();
  assert.equal(summary.progress.complete, true);
  assert.equal(summary.progress.percent, 100);
});

Deno.test("nodes without images_total count what they reported", () => {
  const store = new MetricsStore();
  store.add(result("n1", "a", "pulled", { imagesTotal: undefined }));
  store.add(result("n1", "b", "attempt-failed", { imagesTotal: undefined, error: "x" }));
  assert.deepEqual(store.summary().nodes.map((n) => [n.images_total, n.pending]), [[2, 1]]);
});

Deno.test("the summary is cached until a result is added", () => {
  const store = new MetricsStore();
  store.add(result("n1", "a", "pulled"));
  const first = store.summary();
  assert.equal(store.summary(), first);
  store.add(result("n1", "b", "pulled"));
  assert.notEqual(store.summary(), first);
});

function snapshot(
  node: string,
  image: string,
  attemptId: string,
  durationMs: number,
  extra: Partial<MetricsResult> = {},
): MetricsResult {
  return {
    attemptId,
    startedAt: 1000,
    image,
    node,
    outcome: "in-progress",
    attempt: 1,
    durationMs,
    imagesTotal: 2,
    bytesReceived: durationMs * 1000,
    storedBytes: durationMs * 1000,
    throughputBytesPerSecond: 1_000_000,
    totalBytes: 10_000_000,
    ...extra,
  };
}

Deno.test("in-progress: the latest per attempt is kept apart and never counts as an attempt", () => {
  const store = new MetricsStore({ clock: { now: () => 0, wallNow: () => 0 } });
  assert.equal(store.add(snapshot("n1", "a", "x", 2_000)), "added");
  assert.equal(store.add(snapshot("n1", "a", "x", 4_000)), "added", "a newer snapshot replaces");
  assert.equal(store.add(snapshot("n1", "a", "x", 3_000)), "duplicate", "an older one is stale");
  assert.deepEqual([...store.inProgress()].map((r) => r.durationMs), [4_000]);
  assert.equal(store.size, 0);
  assert.deepEqual([...store.results()], []);
  assert.equal(store.cellState("n1", "a"), "downloading");

  const summary = store.summary({ grid: true });
  assert.equal(summary.results, 0);
  assert.equal(summary.images[0].attempts, 0);
  assert.deepEqual(store.imageCounters().get("a")!.attempts, {
    pulled: 0,
    present: 0,
    "attempt-failed": 0,
    failed: 0,
  });
  const [node] = summary.nodes;
  assert.deepEqual([node.done, node.pending, node.bytes_in_flight], [0, 2, 4_000_000]);
  assert.deepEqual(node.downloading, [{
    image: "a",
    attempt: 1,
    attempt_id: "x",
    received_bytes: 4_000_000,
    stored_bytes: 4_000_000,
    total_bytes: 10_000_000,
    bytes_per_second: 1_000_000,
    percent: 40,
    eta_seconds: 6,
    elapsed_ms: 4_000,
    updated_seconds_ago: 0,
  }]);
  assert.deepEqual(summary.downloading, [{ node: "n1", ...node.downloading[0] }]);
  assert.deepEqual(
    [summary.progress.downloading, summary.progress.bytes_in_flight, summary.progress.pending],
    [1, 4_000_000, 2],
  );
  assert.equal(summary.grid!.states[0], "d");
  assert.equal(summary.grid!.durations[0][0], 4_000);
});

Deno.test("in-progress: the attempt's own result (same attempt id) supersedes it and is stored", () => {
  const store = new MetricsStore({ clock: { now: () => 0, wallNow: () => 0 } });
  store.add(snapshot("n1", "a", "x", 2_000));
  const before = store.version;
  assert.equal(
    store.add(result("n1", "a", "pulled", { attemptId: "x", durationMs: 5_000 })),
    "added",
  );
  assert.ok(store.version > before);
  assert.deepEqual([...store.inProgress()], []);
  assert.deepEqual([...store.results()].map((r) => [r.attemptId, r.outcome]), [["x", "pulled"]]);
  assert.equal(store.cellState("n1", "a"), "pulled");
  assert.equal(store.imageCounters().get("a")!.attempts.pulled, 1);
  assert.equal(store.add(snapshot("n1", "a", "x", 4_000)), "duplicate", "a late snapshot is stale");
  assert.equal(store.summary().progress.downloading, 0);
  // A failed attempt ends its snapshot too.
  store.add(snapshot("n1", "b", "y", 1_000));
  store.add(result("n1", "b", "attempt-failed", { attemptId: "y", error: "stall" }));
  assert.equal(store.cellState("n1", "b"), "retrying");
  assert.equal(store.summary().nodes[0].failed_attempts, 1);
});

Deno.test("in-progress: a later attempt's result or snapshot of the same node and image ends it", () => {
  const store = new MetricsStore({ clock: { now: () => 0, wallNow: () => 0 } });
  store.add(snapshot("n1", "a", "old", 2_000, { startedAt: 1000 }));
  // The node's run died; its next run pulled the image.
  store.add(result("n1", "a", "pulled", { startedAt: 2000 }));
  assert.deepEqual([...store.inProgress()], []);
  assert.equal(store.add(snapshot("n1", "a", "older", 9_000, { startedAt: 1500 })), "duplicate");

  store.add(snapshot("n1", "b", "first", 2_000, { startedAt: 1000 }));
  store.add(snapshot("n1", "b", "second", 1_000, { startedAt: 1010 }));
  assert.deepEqual([...store.inProgress()].map((r) => r.attemptId), ["second"]);
  assert.equal(store.add(snapshot("n1", "b", "first", 3_000, { startedAt: 1000 })), "duplicate");
  // Other nodes and images are not affected.
  store.add(snapshot("n2", "b", "elsewhere", 1_000, { startedAt: 900 }));
  store.add(result("n2", "a", "pulled", { startedAt: 2000 }));
  assert.deepEqual([...store.inProgress()].map((r) => r.attemptId), ["second", "elsewhere"]);
});

Deno.test("in-progress: bounded, the least recently updated forgotten first, and aged out", () => {
  let now = 0;
  let wallStep = 0;
  const store = new MetricsStore({
    maxInProgress: 2,
    inProgressMaxAgeMs: 60_000,
    clock: { now: () => now, wallNow: () => now + wallStep },
  });
  store.add(snapshot("n1", "a", "x", 1_000));
  store.add(snapshot("n2", "a", "y", 1_000));
  store.add(snapshot("n1", "a", "x", 2_000)); // x is now the most recent
  store.add(snapshot("n3", "a", "z", 1_000));
  assert.deepEqual([...store.inProgress()].map((r) => r.attemptId), ["x", "z"]);
  assert.equal(store.cellState("n2", "a"), "pending");
  now = 30_000;
  store.add(snapshot("n3", "a", "z", 2_000));
  now = 61_000;
  // The server's wall clock steps an hour back: ages are measured on the monotonic clock.
  wallStep = -3_600_000;
  assert.deepEqual([...store.inProgress()].map((r) => r.attemptId), ["z"], "x aged out");
  const summary = store.summary();
  assert.equal(summary.progress.downloading, 1);
  assert.equal(summary.downloading[0].updated_seconds_ago, 31);
  now = 100_000;
  assert.equal(store.summary().progress.downloading, 0, "a cached summary does not outlive it");
  assert.equal(store.size, 0);
});

Deno.test("a summary asked with other limits is not the cached one", () => {
  const store = new MetricsStore();
  for (let i = 0; i < 8; i++) {
    store.add({
      attemptId: `a${i}`,
      startedAt: 1_700_000_000 + i,
      image: `reg/img${i}:1`,
      node: "n1",
      outcome: "pulled",
      attempt: 1,
      durationMs: 1_000 * (i + 1),
      imagesTotal: 8,
    });
  }
  assert.equal(store.summary().slowest.length, 8);
  assert.equal(store.summary({ slowest: 3 }).slowest.length, 3);
  assert.equal(store.summary().slowest.length, 8);
});
