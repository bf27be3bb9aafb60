/**
 * The end-of-run summary of `fetch`: counts, bytes, wall time, and one row per image.
 *
 * @module
 */
import { formatDuration } from "../core/duration.ts";
import { formatBytes } from "../core/log.ts";
import type { ImageResult } from "./scheduler.ts";

/** What a run achieved. */
export interface FetchSummary {
  /** The node the run pulled onto. */
  node: string;
  /** Images pulled by this run. */
  pulled: number;
  /** Images that were on the node already and were not pulled again. */
  present: number;
  /** Images that are not on the node at the end of the run. */
  failed: number;
  /** Image list lines that were not valid image references. */
  invalid: number;
  /** The size the runtime reports for every image now on the node, in bytes. */
  totalBytes: number;
  /** From start to end of the run, in milliseconds. */
  wallMs: number;
  /** Every image, in list order. */
  images: ImageResult[];
  /** What reached the metrics server, when one was given. */
  metrics?: {
    endpoint: string;
    delivered: number;
    undelivered: number;
    dropped: number;
    rejected: number;
  };
}

/** Adds up the results of a run. */
export function summarize(
  node: string,
  results: ImageResult[],
  wallMs: number,
  invalid = 0,
): FetchSummary {
  const count = (status: ImageResult["status"]) =>
    results.filter((r) => r.status === status).length;
  return {
    node,
    pulled: count("pulled"),
    present: count("present"),
    failed: count("failed"),
    invalid,
    totalBytes: results.reduce((sum, r) => sum + (r.sizeBytes ?? 0), 0),
    wallMs,
    images: results,
  };
}

/** Formats the summary as a small table for people, one row per image, then the totals. */
export function formatSummaryText(summary: FetchSummary): string {
  const rows = summary.images.map((r) => [
    r.status === "failed" ? `FAILED (${r.failure})` : r.status,
    String(r.attempts),
    r.sizeBytes === undefined ? "-" : formatBytes(r.sizeBytes),
    formatDuration(r.elapsedMs),
    r.image,
  ]);
  const header = ["RESULT", "ATTEMPTS", "SIZE", "DONE AFTER", "IMAGE"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => i === cells.length - 1 ? c : c.padEnd(widths[i])).join("  ");
  const lines = [line(header), ...rows.map(line)];
  for (const r of summary.images.filter((r) => r.status === "failed")) {
    lines.push(`error: ${r.image}: ${r.error}`);
  }
  lines.push(
    `node ${summary.node}: ${summary.pulled} pulled, ${summary.present} already present, ` +
      `${summary.failed} failed` + (summary.invalid ? `, ${summary.invalid} invalid lines` : "") +
      `; ${formatBytes(summary.totalBytes)} on the node; wall time ${
        formatDuration(summary.wallMs)
      }`,
  );
  if (summary.metrics) {
    const m = summary.metrics;
    lines.push(
      `metrics: ${m.delivered} attempts delivered to ${m.endpoint}` +
        (m.undelivered
          ? `, ${m.undelivered} NOT delivered (${m.dropped} dropped, ${m.rejected} rejected)`
          : ""),
    );
  }
  return lines.join("\n");
}
