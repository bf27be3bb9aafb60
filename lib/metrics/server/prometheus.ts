/**
 * The Prometheus text exposition (format 0.0.4) of a {@linkcode MetricsStore}: attempts by image
 * and outcome, a pull-duration histogram, bytes pulled, nodes reporting, per-image progress and
 * the pulls downloading now (never counted as attempts).
 *
 * @module
 */
import { type MetricsResult, OUTCOMES } from "../protocol.ts";
import { DURATION_BUCKETS_SECONDS, type ImageCounters } from "./aggregates.ts";
import type { MetricsStore } from "./store.ts";
import type { ImageSummary, MetricsSummary } from "./summary.ts";

/** The `Content-Type` of {@linkcode formatPrometheus}'s output. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/**
 * Tells whether an HTTP `Accept` header asks for a Prometheus exposition (as Prometheus' scraper
 * does: `application/openmetrics-text` or `text/plain;version=0.0.4`) rather than JSON. A header
 * that names `application/json`, or only wildcards, gets JSON.
 */
export function wantsPrometheus(accept: string | null): boolean {
  if (!accept) return false;
  const types = accept.toLowerCase().split(",").map((part) => part.split(";")[0].trim());
  if (types.includes("application/json")) return false;
  return types.includes("application/openmetrics-text") || types.includes("text/plain");
}

/** Writes the store's metrics in the Prometheus text format. */
export function formatPrometheus(store: MetricsStore): string {
  const counters = [...store.imageCounters()].sort(([a], [b]) => a.localeCompare(b));
  const summary = store.summary();
  const lines = [
    ...attemptsFamily(counters),
    ...durationFamily(counters),
    ...pulledBytesFamily(counters),
    ...imageNodesFamily(summary.images),
    ...downloadingFamilies(store.inProgress()),
    ...storeFamilies(store, summary.progress),
  ];
  return lines.join("\n") + "\n";
}

/** An image and its counters, as {@linkcode MetricsStore.imageCounters} gives them. */
type ImageCounterEntry = [image: string, counters: ImageCounters];

/** The `# HELP` and `# TYPE` lines that open a metric family. */
function family(name: string, type: string, help: string): string[] {
  return [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`];
}

/** `image_prefetcher_pull_attempts_total`, by image and outcome. */
function attemptsFamily(counters: ImageCounterEntry[]): string[] {
  const lines = family(
    "image_prefetcher_pull_attempts_total",
    "counter",
    "Pull attempts received, by image and outcome (pulled, present, attempt-failed, failed).",
  );
  for (const [image, counter] of counters) {
    for (const outcome of OUTCOMES) {
      lines.push(
        `image_prefetcher_pull_attempts_total${labels({ image, outcome })} ${
          counter.attempts[outcome]
        }`,
      );
    }
  }
  return lines;
}

/** `image_prefetcher_pull_duration_seconds`: the histogram of pulls, by image. */
function durationFamily(counters: ImageCounterEntry[]): string[] {
  const lines = family(
    "image_prefetcher_pull_duration_seconds",
    "histogram",
    "Duration of the pull attempts that got an image onto a node.",
  );
  for (const [image, counter] of counters) {
    let cumulative = 0;
    DURATION_BUCKETS_SECONDS.forEach((bound, index) => {
      cumulative += counter.durationBuckets[index];
      lines.push(
        `image_prefetcher_pull_duration_seconds_bucket${
          labels({ image, le: String(bound) })
        } ${cumulative}`,
      );
    });
    cumulative += counter.durationBuckets[DURATION_BUCKETS_SECONDS.length];
    lines.push(
      `image_prefetcher_pull_duration_seconds_bucket${labels({ image, le: "+Inf" })} ${cumulative}`,
      `image_prefetcher_pull_duration_seconds_sum${labels({ image })} ${
        number(counter.durationSumSeconds)
      }`,
      `image_prefetcher_pull_duration_seconds_count${labels({ image })} ${cumulative}`,
    );
  }
  return lines;
}

/** `image_prefetcher_pulled_bytes_total`, by image. */
function pulledBytesFamily(counters: ImageCounterEntry[]): string[] {
  const lines = family(
    "image_prefetcher_pulled_bytes_total",
    "counter",
    "Bytes pulled: the image sizes of the attempts that pulled, added up.",
  );
  for (const [image, counter] of counters) {
    lines.push(`image_prefetcher_pulled_bytes_total${labels({ image })} ${counter.bytesPulled}`);
  }
  return lines;
}

/** `image_prefetcher_image_nodes`, by image and state (done, failed, pending). */
function imageNodesFamily(images: ImageSummary[]): string[] {
  const lines = family(
    "image_prefetcher_image_nodes",
    "gauge",
    "Nodes per image by state: done (on the node), failed (for good), pending.",
  );
  for (const image of images) {
    for (
      const [state, value] of [
        ["done", image.nodes_done],
        ["failed", image.nodes_failed],
        ["pending", image.nodes_pending],
      ] as const
    ) {
      lines.push(`image_prefetcher_image_nodes${labels({ image: image.image, state })} ${value}`);
    }
  }
  return lines;
}

/** The pulls downloading now and their bytes, by image, from their `in-progress` results. */
function downloadingFamilies(inProgress: Iterable<MetricsResult>): string[] {
  const inFlight = new Map<string, { pulls: number; bytes: number }>();
  for (const result of inProgress) {
    const image = inFlight.get(result.image) ?? { pulls: 0, bytes: 0 };
    image.pulls++;
    image.bytes += result.bytesReceived ?? 0;
    inFlight.set(result.image, image);
  }
  const downloading = [...inFlight].sort(([a], [b]) => a.localeCompare(b));
  const lines = family(
    "image_prefetcher_downloading_pulls",
    "gauge",
    "Pull attempts downloading now, by image (from their latest in-progress results).",
  );
  for (const [image, { pulls }] of downloading) {
    lines.push(`image_prefetcher_downloading_pulls${labels({ image })} ${pulls}`);
  }
  lines.push(...family(
    "image_prefetcher_downloading_received_bytes",
    "gauge",
    "Bytes received so far by the pull attempts downloading now, by image.",
  ));
  for (const [image, { bytes }] of downloading) {
    lines.push(`image_prefetcher_downloading_received_bytes${labels({ image })} ${bytes}`);
  }
  return lines;
}

/** The unlabelled gauges and counters: nodes reporting and finished, results held and refused. */
function storeFamilies(store: MetricsStore, progress: MetricsSummary["progress"]): string[] {
  return [
    ...family(
      "image_prefetcher_nodes_reporting",
      "gauge",
      "Nodes that have sent at least one result.",
    ),
    `image_prefetcher_nodes_reporting ${progress.nodes}`,
    ...family("image_prefetcher_nodes_finished", "gauge", "Nodes with every image done or failed."),
    `image_prefetcher_nodes_finished ${progress.nodes_finished}`,
    ...family(
      "image_prefetcher_nodes_gone",
      "gauge",
      "Nodes with images pending that sent nothing for the server's --node-gone-after.",
    ),
    `image_prefetcher_nodes_gone ${progress.nodes_gone}`,
    ...family(
      "image_prefetcher_results_stored",
      "gauge",
      "Results held in memory: the attempts of the nodes' current runs.",
    ),
    `image_prefetcher_results_stored ${store.size}`,
    ...family(
      "image_prefetcher_results_refused_total",
      "counter",
      "Results refused because the server held --max-results already.",
    ),
    `image_prefetcher_results_refused_total ${store.refusedFull}`,
  ];
}

function labels(values: Record<string, string>): string {
  const pairs = Object.entries(values).map(([name, value]) =>
    `${name}="${value.replaceAll("\\", "\\\\").replaceAll("\n", "\\n").replaceAll('"', '\\"')}"`
  );
  return `{${pairs.join(",")}}`;
}

function number(value: number): string {
  return Number.isInteger(value) ? String(value) : String(Math.round(value * 1000) / 1000);
}
