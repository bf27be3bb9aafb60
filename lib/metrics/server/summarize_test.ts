import assert from "node:assert/strict";
import type { MetricsResult, Outcome } from "../protocol.ts";
import { metricsResult } from "../../../testing/metrics_result.ts";
import { MetricsStore } from "./store.ts";
import { summarize } from "./summarize.ts";

/** A result of these tests: always attempt 1, of a run of 1 image. */
const result = (
  node: string,
  image: string,
  outcome: Outcome,
  extra: Partial<MetricsResult> = {},
) => metricsResult(node, image, outcome, { attempt: 1, imagesTotal: 1, ...extra });

Deno.test("summarize: the slowest pulls are the N slowest, slowest first; 0 lists none", () => {
  const store = new MetricsStore();
  [500, 100, 900, 300, 700].forEach((ms, i) =>
    store.add(result(`n${i}`, "a", "pulled", { durationMs: ms }))
  );
  assert.deepEqual(store.summary({ slowest: 3 }).slowest.map((s) => s.duration_ms), [
    900,
    700,
    500,
  ]);
  store.add(result("n9", "a", "present"));
  assert.deepEqual(store.summary({ slowest: 0 }).slowest, []);
});

Deno.test("summarize: error groups, most final failures, then attempts, then image; nodes capped", () => {
  const store = new MetricsStore();
  for (const node of ["n1", "n2", "n3"]) {
    store.add(result(node, "a", "attempt-failed", { error: "slow" }));
  }
  store.add(result("n4", "b", "failed", { error: "denied" }));
  store.add(result("n5", "a", "failed"));
  const { errors } = store.summary({ errorNodes: 2 });
  assert.deepEqual(
    errors.map((e) => [e.image, e.error, e.attempts, e.final_failures, e.nodes, e.node_count]),
    [
      ["a", "(no error message)", 1, 1, ["n5"], 1],
      ["b", "denied", 1, 1, ["n4"], 1],
      ["a", "slow", 3, 0, ["n1", "n2"], 3],
    ],
  );
});

Deno.test("summarize: the downloads listed are capped, the progress counts them all", () => {
  const store = new MetricsStore({ clock: { now: () => 10_000, wallNow: () => 10_000 } });
  for (const node of ["n3", "n1", "n2"]) {
    store.add(result(node, "a", "in-progress", { bytesReceived: 10, throughputBytesPerSecond: 5 }));
  }
  const summary = store.summary({ downloading: 2 });
  assert.equal(summary.progress.downloading, 3);
  assert.equal(summary.progress.bytes_in_flight, 30);
  assert.equal(summary.progress.bytes_per_second, 15);
  assert.equal(summary.downloading.length, 2);
  assert.deepEqual(summary.nodes.map((n) => n.downloading.length), [1, 1, 1]);
});

Deno.test("summarize: an empty source is not complete and stamps the clock's time", () => {
  const summary = summarize({
    nodes: new Map(),
    images: new Map(),
    results: 0,
    maxResults: 5,
    refusedFull: 2,
    staleIgnored: 0,
    runsCompacted: 0,
    goneAfterMs: 1_000,
    now: () => 0,
    wallNow: () => Date.UTC(2024, 0, 2),
  });
  assert.equal(summary.generated_at, "2024-01-02T00:00:00.000Z");
  assert.deepEqual([summary.max_results, summary.refused_full], [5, 2]);
  assert.deepEqual([summary.progress.percent, summary.progress.complete], [0, false]);
  assert.equal(summary.grid, undefined);
});
