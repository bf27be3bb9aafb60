import assert from "node:assert/strict";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import type { MetricsResult } from "../protocol.ts";
import { MetricsStore } from "./store.ts";
import { formatPrometheus, wantsPrometheus } from "./prometheus.ts";

interface Family {
  name: string;
  type: string;
  metrics: Array<{
    value?: string;
    labels?: Record<string, string>;
    buckets?: Record<string, string>;
    count?: string;
    sum?: string;
  }>;
}

function sample(extra: Partial<MetricsResult>): MetricsResult {
  return {
    attemptId: crypto.randomUUID(),
    startedAt: 1000,
    image: "reg/a:1",
    node: "n1",
    outcome: "pulled",
    attempt: 1,
    durationMs: 2000,
    imagesTotal: 1,
    ...extra,
  };
}

Deno.test("the Prometheus exposition parses back with a real parser", () => {
  const store = new MetricsStore();
  store.add(sample({ durationMs: 2000, sizeBytes: 100 }));
  store.add(sample({ node: "n2", durationMs: 40_000, sizeBytes: 100 }));
  store.add(sample({ node: "n3", outcome: "attempt-failed", error: "x" }));
  store.add(sample({ node: "n3", image: 'reg/"quoted"\\b:1', outcome: "present" }));
  const families = parsePrometheusTextFormat(formatPrometheus(store)) as Family[];
  const byName = new Map(families.map((f) => [f.name, f]));

  const attempts = byName.get("image_prefetcher_pull_attempts_total")!;
  assert.equal(attempts.type, "COUNTER");
  const count = (image: string, outcome: string) =>
    Number(
      attempts.metrics.find((m) => m.labels?.image === image && m.labels?.outcome === outcome)
        ?.value,
    );
  assert.equal(count("reg/a:1", "pulled"), 2);
  assert.equal(count("reg/a:1", "attempt-failed"), 1);
  assert.equal(count('reg/"quoted"\\b:1', "present"), 1, "label values are escaped");

  // This parser folds a histogram's label sets into one (it was written for unlabelled ones), so
  // the histogram is checked on a store with one image; the syntax of all of it is checked above.
  const histogram = byName.get("image_prefetcher_pull_duration_seconds")!;
  assert.equal(histogram.type, "HISTOGRAM");
  const oneImage = new MetricsStore();
  oneImage.add(sample({ durationMs: 2000 }));
  oneImage.add(sample({ node: "n2", durationMs: 40_000 }));
  const [buckets] = (parsePrometheusTextFormat(formatPrometheus(oneImage)) as Family[])
    .find((f) => f.name === "image_prefetcher_pull_duration_seconds")!.metrics;
  assert.deepEqual(
    Object.fromEntries(Object.entries(buckets.buckets!).map(([le, n]) => [le, Number(n)])),
    {
      "0.5": 0,
      "1": 0,
      "2.5": 1,
      "5": 1,
      "10": 1,
      "30": 1,
      "60": 2,
      "120": 2,
      "300": 2,
      "600": 2,
      "1200": 2,
      "+Inf": 2,
    },
  );

  const bytes = byName.get("image_prefetcher_pulled_bytes_total")!;
  assert.equal(Number(bytes.metrics.find((m) => m.labels?.image === "reg/a:1")!.value), 200);
  assert.equal(Number(byName.get("image_prefetcher_nodes_reporting")!.metrics[0].value), 3);
  const nodes = byName.get("image_prefetcher_image_nodes")!;
  const state = (s: string) =>
    Number(
      nodes.metrics.find((m) => m.labels?.image === "reg/a:1" && m.labels?.state === s)!.value,
    );
  assert.deepEqual([state("done"), state("failed"), state("pending")], [2, 0, 1]);
});

Deno.test("an empty store is a valid exposition", () => {
  const families = parsePrometheusTextFormat(formatPrometheus(new MetricsStore())) as Family[];
  assert.equal(
    Number(families.find((f) => f.name === "image_prefetcher_results_stored")!.metrics[0].value),
    0,
  );
});

Deno.test("Prometheus' Accept header gets the exposition; curl, browsers and jq get JSON", () => {
  assert.equal(
    wantsPrometheus(
      "application/openmetrics-text;version=1.0.0;q=0.6,application/openmetrics-text;" +
        "version=0.0.1;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1",
    ),
    true,
  );
  assert.equal(wantsPrometheus("text/plain;version=0.0.4"), true);
  assert.equal(wantsPrometheus("*/*"), false);
  assert.equal(wantsPrometheus(null), false);
  assert.equal(wantsPrometheus("application/json"), false);
  assert.equal(wantsPrometheus("text/html,application/xhtml+xml,*/*;q=0.8"), false);
});

Deno.test("pulls in flight are gauges, never attempts", () => {
  const store = new MetricsStore();
  store.add(sample({ attemptId: "x", outcome: "in-progress", bytesReceived: 3_000 }));
  store.add(sample({ attemptId: "y", node: "n2", outcome: "in-progress", bytesReceived: 4_000 }));
  store.add(sample({ attemptId: "z", node: "n3" }));
  const families = parsePrometheusTextFormat(formatPrometheus(store)) as Family[];
  const byName = new Map(families.map((f) => [f.name, f]));
  const value = (name: string, labels: Record<string, string> = {}) =>
    Number(
      byName.get(name)!.metrics.find((m) =>
        Object.entries(labels).every(([k, v]) => m.labels?.[k] === v)
      )?.value,
    );
  assert.equal(value("image_prefetcher_downloading_pulls", { image: "reg/a:1" }), 2);
  assert.equal(value("image_prefetcher_downloading_received_bytes", { image: "reg/a:1" }), 7_000);
  assert.equal(
    value("image_prefetcher_pull_attempts_total", { image: "reg/a:1", outcome: "pulled" }),
    1,
  );
  const outcomes = byName.get("image_prefetcher_pull_attempts_total")!.metrics
    .map((m) => m.labels?.outcome);
  assert.ok(!outcomes.includes("in-progress"));
  assert.equal(value("image_prefetcher_results_stored"), 1);
  store.add(sample({ attemptId: "x", outcome: "pulled" }));
  const after = parsePrometheusTextFormat(formatPrometheus(store)) as Family[];
  const pulls = after.find((f) => f.name === "image_prefetcher_downloading_pulls")!;
  assert.deepEqual(pulls.metrics.map((m) => Number(m.value)), [1]);
});
