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

/** One run of one instance on one node (see `node_runs.ts`). */
export interface NodeRun {
  /** The client's `run_id`, or one derived for clients that send none (`legacy@<started_at>`). */
  id: string;
  /** The prefetcher instance ("" when unknown). */
  instance: string;
  /** The earliest `started_at` of the run's results, in seconds since the epoch. */
  firstStartedAt: number;
  /** The latest `started_at` of the run's results. */
  lastStartedAt: number;
  /** How many images the run has, as its latest result said (0: unknown). */
  imagesTotal: number;
}

/** Where a cell stood at the end of the run before its current one. */
export interface EarlierState {
  /** The earlier run's final outcome. */
  outcome: "pulled" | "present" | "failed";
  /** When its deciding attempt finished, in seconds since the epoch. */
  finishedAt: number;
}

/** What the store knows of one image on one node, in the cell's run. */
export interface Cell {
  /** The image. */
  image: string;
  /** The run the cell's results are from: counted only while it is its node's current run. */
  run: NodeRun;
  /**
   * The run's finished results of the cell, oldest first, at most `MAX_HELD_PER_CELL`: none, one
   * (most cells; no array for it) or several. Read it with {@linkcode heldResults}.
   */
  held: MetricsResult | MetricsResult[] | undefined;
  /** The final result that decides the cell, if any. */
  final?: MetricsResult;
  /** Attempts of the image on the node that failed, in the cell's run. */
  failedAttempts: number;
  /** The latest `started_at` of a finished attempt (any outcome) of the cell's run. */
  lastFinishedStartedAt: number;
  /** Results that started at or before this were dropped for the cap; such re-sends are stale. */
  droppedUpTo: number;
  /** The attempt downloading now, when one is. */
  inFlight?: InFlight;
  /** How the run before the cell's run ended for it, when it did. */
  earlier?: EarlierState;
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

/** Older runs of a node, folded into counts once their results are dropped. */
export interface RunHistory {
  /** Runs replaced by a later one. */
  runs: number;
  /** Their attempts, every outcome. */
  attempts: number;
  /** Of those, the failed ones (`attempt-failed` and `failed`). */
  failedAttempts: number;
  /** Of those, the ones that pulled. */
  pulled: number;
  /** Bytes they pulled (image sizes). */
  bytesPulled: number;
  /** Time their pulls took, in milliseconds. */
  pullMs: number;
}

/** What the store knows of one node. */
export interface NodeState {
  /** The node's name. */
  name: string;
  /** Its cells, by image. */
  cells: Map<string, Cell>;
  /** Its current run per instance. */
  runs: Map<string, NodeRun>;
  /** Ids of its runs replaced by later ones, newest last (bounded); their results are stale. */
  retired: string[];
  /** When the server last heard from it, on the monotonic clock, in milliseconds. */
  lastSeen: number;
  /** The latest `started_at` of a result from the node, in seconds since the epoch. */
  lastStartedAt: number;
  /** Its replaced runs as counts. */
  history: RunHistory;
}

/** What the store knows of one image: its counters, largest size and cells holding it. */
export type ImageState = ImageCounters & {
  /** The largest size a node reported. */
  size: number;
  /** How many cells (nodes) refer to it; an image no cell refers to may be forgotten. */
  cells: number;
};

/** An empty {@linkcode RunHistory}. */
export function emptyHistory(): RunHistory {
  return { runs: 0, attempts: 0, failedAttempts: 0, pulled: 0, bytesPulled: 0, pullMs: 0 };
}

/** A cell's held results as a list, oldest first. */
export function heldResults(cell: Cell): readonly MetricsResult[] {
  const held = cell.held;
  if (held === undefined) return [];
  return Array.isArray(held) ? held : [held];
}

/** Whether a cell's run is its node's current run (only those count in `/summary`). */
export function isCurrent(node: NodeState, cell: Cell): boolean {
  return node.runs.get(cell.run.instance) === cell.run;
}

/** Where a cell stands: downloading first, else {@linkcode finishedStateOf}. */
export function cellStateOf(cell: Cell): CellState {
  return cell.inFlight ? "downloading" : finishedStateOf(cell);
}

/** Where a cell stands by its finished attempts: its final result, else retrying or pending. */
export function finishedStateOf(cell: Cell): Exclude<CellState, "downloading"> {
  if (cell.final) return cell.final.outcome as "pulled" | "present" | "failed";
  return cell.failedAttempts > 0 ? "retrying" : "pending";
}
