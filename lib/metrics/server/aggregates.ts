/**
 * The aggregates a `MetricsStore` keeps as results arrive: one cell per node and image,
 * per-node and per-image counters, and failed attempts grouped by image and error message. The
 * store updates them; `summarize` and the Prometheus exposition read them.
 *
 * @module
 */
import type { AttemptOutcome, MetricsResult } from "../protocol.ts";
import type { CellState } from "./summary.ts";

/** Upper bounds, in seconds, of the pull-duration histogram's buckets. */
export const DURATION_BUCKETS_SECONDS: readonly number[] = [
  0.5,
  1,
  2.5,
  5,
  10,
  30,
  60,
  120,
  300,
  600,
  1200,
];

/** Per-image counters the Prometheus exposition reads. */
export interface ImageCounters {
  /** Attempts received, by outcome. */
  attempts: Record<AttemptOutcome, number>;
  /** Pull-duration histogram of `pulled` attempts: count per bucket (not cumulative), +Inf last. */
  durationBuckets: number[];
  /** Sum of the `pulled` attempts' durations, in seconds. */
  durationSumSeconds: number;
  /** Bytes pulled: the sizes of the `pulled` attempts added up. */
  bytesPulled: number;
}

/** What the store knows of one image on one node. */
export interface Cell {
  /** The final result that decides the cell, if any. */
  final?: MetricsResult;
  /** Attempts of the image on the node that failed. */
  failedAttempts: number;
  /** The latest `started_at` of a finished attempt (any outcome) of the cell. */
  lastFinishedStartedAt: number;
  /** The attempt downloading now, when one is. */
  inFlight?: InFlight;
}

/** The latest `in-progress` result of a running attempt. */
export interface InFlight {
  /** The snapshot. */
  result: MetricsResult;
  /** When the server received it, in milliseconds since the epoch. */
  receivedAt: number;
  /** The cell of the attempt's node and image. */
  cell: Cell;
}

/** What the store knows of one node. */
export interface NodeState {
  /** Its cells, by image. */
  cells: Map<string, Cell>;
  /** images_total per instance. */
  imagesTotal: Map<string, number>;
  /** Attempts that failed on the node. */
  failedAttempts: number;
  /** The latest `started_at` of a result from the node, in seconds since the epoch. */
  lastStartedAt: number;
}

/** What the store knows of one image: its counters, instances and largest size reported. */
export type ImageState = ImageCounters & { instances: Set<string>; size: number };

/** The failed attempts of one image with one error message. */
export interface ErrorState {
  /** How many attempts failed with it. */
  attempts: number;
  /** Nodes where the image failed for good with it. */
  finalNodes: Set<string>;
  /** Nodes where it happened. */
  nodes: Set<string>;
}

/** Where a cell stands: downloading first, else its final result, else retrying or pending. */
export function cellStateOf(cell: Cell): CellState {
  if (cell.inFlight) return "downloading";
  if (cell.final) return cell.final.outcome as "pulled" | "present" | "failed";
  return cell.failedAttempts > 0 ? "retrying" : "pending";
}
