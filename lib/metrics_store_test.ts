import assert from "node:assert/strict";
import type { MetricsResult, Outcome } from "./metrics_result.ts";
import { MetricsStore, StoreFullError } from "./metrics_store.ts";

let ids = 0;
function result(
  node: string,
  image: string,
  outcome: Outcome,
  extra: Partial<MetricsResult> = {},
): MetricsResult {
  return {
    attemptId: `id-${++ids}`,
    startedAt: 1000,
    image,
    node,
    outcome,
    attempt: outcome === "present" ? 0 : 1,
    durationMs: 100,
    imagesTotal: 2,
    ...extra,
  };
}

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
  const store = new MetricsStore({ now: () => 0 });
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
    images: 2,
    expected: 6,
    done: 3,
    failed: 1,
    pending: 2,
    percent: 66.6,
    complete: false,
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
