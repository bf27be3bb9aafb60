import assert from "node:assert/strict";
import type { MetricsResult, Outcome } from "../protocol.ts";
import { metricsResult } from "../../../testing/metrics_result.ts";
import {
  MAX_HELD_PER_CELL,
  MAX_IMAGES_PER_NODE,
  MetricsStore,
  StoreFullError,
  StoreLimitError,
} from "./store.ts";

/** A result of these tests: 2 s long, 100 bytes. */
const result = (
  node: string,
  image: string,
  outcome: Outcome,
  extra: Partial<MetricsResult> = {},
) => metricsResult(node, image, outcome, { durationMs: 2_000, sizeBytes: 100, ...extra });

Deno.test("runs: a new run counts alone; the earlier one's cells show as earlier, not done", () => {
  const store = new MetricsStore();
  store.add(result("n1", "a", "pulled", { runId: "r1" }));
  store.add(result("n1", "b", "pulled", { runId: "r1" }));
  assert.equal(store.summary().progress.complete, true);

  store.add(result("n1", "a", "pulled", { runId: "r2", startedAt: 5_000, imagesTotal: 3 }));
  const summary = store.summary({ grid: true });
  assert.deepEqual(
    [summary.progress.done, summary.progress.pending, summary.progress.complete],
    [1, 2, false],
    "b (listed again) and c (new) are pending in the new run",
  );
  assert.deepEqual(summary.grid!.states, ["Po"], "b was done in the run before");
  const [node] = summary.nodes;
  assert.deepEqual([node.run_id, node.run_started_at, node.last_finished_at], ["r2", 5_000, 5_002]);
  assert.deepEqual(node.earlier_runs, {
    runs: 1,
    attempts: 2,
    failed_attempts: 0,
    pulled: 2,
    bytes_pulled: 200,
  });
  assert.equal(store.size, 1, "only the current run's results are held");
  assert.equal(store.imageCounters().get("a")!.attempts.pulled, 2, "counters keep every run");
  assert.equal(store.cellState("n1", "b"), "pending");

  // A re-send of the replaced run is stale, even with a new attempt id.
  assert.equal(store.add(result("n1", "b", "failed", { runId: "r1", error: "x" })), "duplicate");
  assert.equal(store.staleIgnored, 1);
  // So is an unknown run older than the current one.
  assert.equal(store.add(result("n1", "b", "pulled", { runId: "r0", startedAt: 10 })), "duplicate");
  assert.equal(store.runsCompacted, 1);
});

Deno.test("runs: a run that pulls an image again shows its latest state and when", () => {
  const store = new MetricsStore();
  store.add(result("n1", "a", "pulled", { runId: "keep", startedAt: 1_000 }));
  store.add(result("n1", "a", "failed", { runId: "keep", startedAt: 2_000, error: "denied" }));
  store.add(result("n1", "a", "pulled", { runId: "keep", startedAt: 3_000 }));
  const summary = store.summary({ grid: true });
  assert.equal(store.cellState("n1", "a"), "pulled");
  assert.equal(summary.nodes[0].last_finished_at, 3_002);
  assert.equal(summary.images[0].last_finished_at, 3_002, "the image's latest refresh");
  assert.equal(summary.nodes[0].done, 1);
});

Deno.test("runs: 20 runs of a cluster hold one run's results, none refused", () => {
  const store = new MetricsStore({ maxResults: 12 });
  for (let run = 0; run < 20; run++) {
    for (const node of ["n1", "n2", "n3"]) {
      for (const image of ["a", "b", "c", "d"]) {
        store.add(result(node, image, "pulled", {
          runId: `run-${node}-${run}`,
          startedAt: 1_000 + run * 100,
          imagesTotal: 4,
        }));
      }
    }
  }
  assert.equal(store.size, 12);
  assert.equal(store.refusedFull, 0);
  assert.equal(store.imageCounters().get("a")!.attempts.pulled, 60);
  const summary = store.summary();
  assert.deepEqual([summary.progress.done, summary.progress.complete], [12, true]);
  assert.deepEqual(summary.nodes.map((n) => n.earlier_runs.runs), [19, 19, 19]);
  assert.equal(summary.runs_compacted, 57);
  assert.throws(
    () => store.add(result("n1", "e", "pulled", { runId: "run-n1-19", startedAt: 3_000 })),
    StoreFullError,
    "a single run past --max-results is still refused",
  );
});

Deno.test("runs: a cell keeps its latest attempts, the older ones as counts", () => {
  const store = new MetricsStore();
  for (let i = 0; i < MAX_HELD_PER_CELL + 4; i++) {
    store.add(
      result("n1", "a", "attempt-failed", { runId: "r", startedAt: 1_000 + i, error: "x" }),
    );
  }
  assert.equal(store.size, MAX_HELD_PER_CELL);
  assert.equal(store.summary().nodes[0].earlier_runs.attempts, 4);
  assert.equal(
    store.add(result("n1", "a", "failed", { runId: "r", startedAt: 1_001, error: "x" })),
    "duplicate",
    "a re-send older than what was dropped is stale",
  );
});

Deno.test("runs: without run ids, a pause of over 30 minutes starts a new run", () => {
  const store = new MetricsStore();
  store.add(result("n1", "a", "pulled", { startedAt: 1_000 }));
  store.add(result("n1", "b", "pulled", { startedAt: 2_000 }));
  assert.equal(store.summary().nodes[0].earlier_runs.runs, 0, "within 30 minutes: one run");
  store.add(result("n1", "a", "pulled", { startedAt: 2_000 + 1_801 }));
  const [node] = store.summary().nodes;
  assert.deepEqual([node.earlier_runs.runs, node.done, node.run_id], [1, 1, "legacy@3801"]);
});

Deno.test("gone: a node silent past the bound with images pending is gone, not pending", () => {
  let clock = 0;
  const store = new MetricsStore({
    goneAfterMs: 60_000,
    clock: { now: () => clock, wallNow: () => 0 },
  });
  store.add(result("n1", "a", "pulled", { runId: "r" }));
  store.add(result("n1", "b", "pulled", { runId: "r" }));
  store.add(result("n2", "a", "pulled", { runId: "s" }));
  clock = 30_000;
  assert.deepEqual(store.summary().nodes.map((n) => n.gone), [false, false]);
  clock = 61_000;
  const summary = store.summary();
  assert.deepEqual(summary.nodes.map((n) => [n.gone, n.pending, n.last_seen_seconds_ago]), [
    [false, 0, 61],
    [true, 0, 61],
  ], "a finished node is never gone");
  assert.deepEqual(
    [summary.progress.pending, summary.progress.gone, summary.progress.nodes_gone],
    [0, 1, 1],
  );
  assert.equal(summary.progress.complete, true, "the page stops waiting for a gone node");
  store.add(result("n2", "b", "attempt-failed", { runId: "s", error: "x" }));
  assert.equal(store.summary().nodes[1].gone, false, "it is back");
});

Deno.test("bounds: past --max-nodes a gone node makes room, else the result is refused", () => {
  let clock = 0;
  const store = new MetricsStore({
    maxNodes: 2,
    goneAfterMs: 60_000,
    clock: { now: () => clock, wallNow: () => 0 },
  });
  store.add(result("n1", "a", "attempt-failed", { runId: "r", error: "x" }));
  clock = 10_000;
  store.add(result("n2", "a", "pulled", { runId: "s" }));
  assert.throws(
    () => store.add(result("n3", "a", "pulled", { runId: "t" })),
    (error: Error) => error instanceof StoreLimitError && /--max-nodes/.test(error.message),
  );
  clock = 65_000;
  assert.equal(store.add(result("n3", "a", "pulled", { runId: "t" })), "added");
  assert.deepEqual(store.summary().nodes.map((n) => n.node), ["n2", "n3"]);
});

Deno.test("bounds: past --max-images an image no node lists makes room, else refused", () => {
  const store = new MetricsStore({ maxImages: 2 });
  store.add(result("n1", "a", "pulled", { runId: "r1" }));
  store.add(result("n1", "b", "pulled", { runId: "r1" }));
  assert.throws(
    () => store.add(result("n1", "c", "pulled", { runId: "r1" })),
    (error: Error) => error instanceof StoreLimitError && /--max-images/.test(error.message),
  );
  // Two runs later, "a" is listed by no cell any more.
  store.add(result("n1", "b", "pulled", { runId: "r2", startedAt: 2_000 }));
  store.add(result("n1", "b", "pulled", { runId: "r3", startedAt: 3_000 }));
  assert.equal(store.add(result("n1", "c", "pulled", { runId: "r3", startedAt: 3_000 })), "added");
  assert.deepEqual([...store.imageCounters().keys()].sort(), ["b", "c"]);
});

Deno.test("bounds: at most 16 instances per node", () => {
  const store = new MetricsStore();
  for (let i = 0; i < 16; i++) store.add(result("n1", "a", "pulled", { instance: `i${i}` }));
  assert.throws(
    () => store.add(result("n1", "a", "pulled", { instance: "i16" })),
    StoreLimitError,
  );
});

Deno.test("journal records rebuild the store: runs, counters, earlier cells, stale ids", () => {
  const store = new MetricsStore({ clock: { now: () => 0, wallNow: () => 0 } });
  for (let run = 0; run < 3; run++) {
    for (const image of ["a", "b"]) {
      store.add(result("n1", image, run === 1 ? "failed" : "pulled", {
        runId: `r${run}`,
        startedAt: 1_000 + run * 100,
        ...(run === 1 ? { error: "denied" } : {}),
      }));
    }
  }
  store.add(result("n2", "a", "pulled", { runId: "s1", startedAt: 1_000 }));
  store.add(result("n2", "b", "pulled", { runId: "s1", startedAt: 1_000 }));
  store.add(result("n2", "a", "pulled", { runId: "s2", startedAt: 2_000 }));
  const copy = new MetricsStore({ clock: { now: () => 0, wallNow: () => 0 } });
  for (const record of JSON.parse(JSON.stringify([...store.journalRecords()]))) {
    copy.restore(record);
  }
  const strip = (s: ReturnType<MetricsStore["summary"]>) => ({ ...s, generated_at: "" });
  assert.deepEqual(strip(copy.summary({ grid: true })), strip(store.summary({ grid: true })));
  assert.deepEqual(copy.imageCounters(), store.imageCounters());
  assert.deepEqual([...copy.results()], [...store.results()]);
  assert.equal(copy.summary({ grid: true }).grid!.states[1], "Po", "n2's b: earlier run");
  assert.equal(copy.add(result("n1", "a", "failed", { runId: "r1", error: "x" })), "duplicate");
});

Deno.test("bounds: at most 2,000 images per node", () => {
  const store = new MetricsStore();
  for (let i = 0; i < MAX_IMAGES_PER_NODE; i++) store.add(result("n1", `i${i}`, "pulled"));
  assert.throws(
    () => store.add(result("n1", "one-more", "pulled")),
    (error: Error) =>
      error instanceof StoreLimitError && /2000 distinct images/.test(error.message),
  );
  assert.equal(store.add(result("n2", "one-more", "pulled")), "added", "other nodes may");
});

Deno.test("shared strings: long ones are not kept, so unique errors cannot fill the table", () => {
  const store = new MetricsStore();
  store.intern("the attempt timed out after 30s");
  store.intern("the attempt timed out after 30s");
  assert.equal(store.sharedStrings, 1);
  store.intern("x".repeat(512));
  assert.equal(store.sharedStrings, 2);
  store.intern("x".repeat(513));
  assert.equal(store.sharedStrings, 2, "a string over 512 characters is not kept");
  store.add(result("n1", "a", "pulled", { runId: crypto.randomUUID() }));
  assert.equal(store.sharedStrings, 4, "node and image, not the run id");
});
