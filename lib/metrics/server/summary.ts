/**
 * The `GET /summary` document: what a {@linkcode MetricsSummary} holds, section by section, and
 * the options that shape it. The store makes it (`MetricsStore.summary`), the HTML report and the
 * tests read it.
 *
 * @module
 */

/**
 * Where an image stands on a node in the node's current run: `downloading` (an attempt is
 * downloading it now), `pulled` / `present` (done), `failed` (final), `retrying` (only failed
 * attempts so far, more to come) or `pending` (nothing received yet). The grid also writes
 * `earlier`: pending in the current run, done or failed in the run before it.
 */
export type CellState = "downloading" | "pulled" | "present" | "failed" | "retrying" | "pending";

/** A grid cell's state: a {@linkcode CellState}, or pending now but finished in an earlier run. */
export type GridState = CellState | "earlier";

/** One letter per {@linkcode GridState}, as the summary's grid writes them. */
export const CELL_LETTERS: Readonly<Record<GridState, string>> = Object.freeze({
  downloading: "d",
  pulled: "P",
  present: "p",
  failed: "F",
  retrying: "r",
  pending: ".",
  earlier: "o",
});

/** Per-image figures of a {@linkcode MetricsSummary}. */
export interface ImageSummary {
  /** The image. */
  image: string;
  /** Nodes that have it (pulled or present). */
  nodes_done: number;
  /** Of those, nodes that were pulled (not already present). */
  nodes_pulled: number;
  /** Nodes where it failed for good. */
  nodes_failed: number;
  /** Nodes of the image's instances that have not finished it (retrying included). */
  nodes_pending: number;
  /** Of the pending ones, nodes that had a failed attempt and will retry. */
  nodes_retrying: number;
  /** Attempts received, all outcomes. */
  attempts: number;
  /** Attempts that failed (`attempt-failed` and `failed`). */
  failed_attempts: number;
  /** Median duration of the pulls that got it onto a node, in milliseconds. */
  p50_ms?: number;
  /** 95th percentile of the same. */
  p95_ms?: number;
  /** The slowest of the same. */
  max_ms?: number;
  /** The largest size a node reported, in bytes. */
  size_bytes?: number;
  /**
   * When the image last finished on a node in its current run (pulled, found present or failed:
   * the latest refresh, with a long-lived client), in seconds since the epoch.
   */
  last_finished_at?: number;
}

/** One image downloading on a node now, from its attempt's latest `in-progress` result. */
export interface NodeDownload {
  /** The image. */
  image: string;
  /** Which attempt is downloading it. */
  attempt: number;
  /** The attempt's id, which its finished result will carry too. */
  attempt_id: string;
  /** Bytes this attempt received so far. */
  received_bytes: number;
  /** Bytes of the image on the node so far, by this attempt or before it, when known. */
  stored_bytes?: number;
  /** The image's total bytes, when known. */
  total_bytes?: number;
  /** The recent download rate, in bytes per second. */
  bytes_per_second: number;
  /** `stored_bytes / total_bytes` in percent, one decimal, when the total is known. */
  percent?: number;
  /** Seconds left at the current rate, when the total is known and bytes are flowing. */
  eta_seconds?: number;
  /** How long the attempt has run, in milliseconds, as of its latest snapshot. */
  elapsed_ms: number;
  /** How long ago the server received the latest snapshot, in seconds. */
  updated_seconds_ago: number;
}

/** One pull downloading now, with its node: an entry of {@linkcode MetricsSummary.downloading}. */
export interface DownloadingPull extends NodeDownload {
  /** The node. */
  node: string;
}

/** Per-node figures of a {@linkcode MetricsSummary}. */
export interface NodeSummary {
  /** The node. */
  node: string;
  /** How many images the node has to handle (0 when its client did not say). */
  images_total: number;
  /** Images that are on the node. */
  done: number;
  /** Images that failed there for good. */
  failed: number;
  /** Images not finished yet. */
  pending: number;
  /** Attempts that failed there, in its current run. */
  failed_attempts: number;
  /** Every image of the node is done or failed. */
  finished: boolean;
  /**
   * Not finished, and nothing heard from the node for the server's gone-after time (15 min by
   * default): it was probably removed or stopped; its pending images count as `gone`, not
   * `pending`.
   */
  gone: boolean;
  /** Seconds since the server last heard from the node. */
  last_seen_seconds_ago: number;
  /** The current run's id (one per instance, comma-separated, when the node runs several). */
  run_id: string;
  /** When the current run's first attempt started, in seconds since the epoch. */
  run_started_at: number;
  /**
   * When the latest final result of the current run finished (the last refresh of the node's
   * images, with a long-lived client), in seconds since the epoch; 0 before the first.
   */
  last_finished_at: number;
  /** Runs of the node before its current one, folded into these counts. */
  earlier_runs: {
    runs: number;
    attempts: number;
    failed_attempts: number;
    pulled: number;
    bytes_pulled: number;
  };
  /** When the last result from the node started, in seconds since the epoch. */
  last_started_at: number;
  /** The images downloading on the node now, by name. */
  downloading: NodeDownload[];
  /** Bytes received so far by the node's pulls in flight. */
  bytes_in_flight: number;
}

/** One of the slowest pulls. */
export interface SlowPull {
  /** The node. */
  node: string;
  /** The image. */
  image: string;
  /** How long the pull took, in milliseconds. */
  duration_ms: number;
  /** Which attempt it was. */
  attempt: number;
  /** The image's size, when known. */
  size_bytes?: number;
}

/** One error message of one image, with where it happened. */
export interface ErrorGroup {
  /** The image. */
  image: string;
  /** The error message. */
  error: string;
  /** How many attempts failed with it. */
  attempts: number;
  /** On how many nodes the image failed for good with it. */
  final_failures: number;
  /** Nodes it happened on (the first {@linkcode SummaryOptions.errorNodes}). */
  nodes: string[];
  /** How many nodes it happened on in all. */
  node_count: number;
}

/** The node x image grid of the HTML report. */
export interface SummaryGrid {
  /** Column order. */
  images: string[];
  /** Row order. */
  nodes: string[];
  /** Per node, one {@linkcode CELL_LETTERS} letter per image (its current run). */
  states: string[];
  /** Per node, per image, the deciding attempt's duration in milliseconds (0: none). */
  durations: number[][];
}

/** What `GET /summary` serves. */
export interface MetricsSummary {
  /** When the summary was made (ISO 8601). */
  generated_at: string;
  /** Results held. */
  results: number;
  /** The bound on results held. */
  max_results: number;
  /** Results refused because the store was full. */
  refused_full: number;
  /** Results ignored as late re-sends of runs already replaced. */
  stale_ignored: number;
  /** Runs replaced by a later run of their node, kept only as counts. */
  runs_compacted: number;
  /** Overall progress of the nodes' current runs. */
  progress: {
    nodes: number;
    nodes_finished: number;
    /** Nodes not finished and not heard from for the gone-after time. */
    nodes_gone: number;
    images: number;
    /** Node-image pairs expected: each node's `images_total` (or what it reported, if unknown). */
    expected: number;
    done: number;
    failed: number;
    /** Pairs not finished on nodes still reporting. */
    pending: number;
    /** Pairs not finished on gone nodes. */
    gone: number;
    /** `(done + failed) / expected` in percent, one decimal. */
    percent: number;
    /** Nodes have reported and none still reporting has anything pending. */
    complete: boolean;
    /** Pulls downloading now, on every node. */
    downloading: number;
    /** Bytes received so far by every pull in flight. */
    bytes_in_flight: number;
    /** The pulls in flight's download rates added up, in bytes per second. */
    bytes_per_second: number;
  };
  /** Per image, by name. */
  images: ImageSummary[];
  /** Per node, by name. */
  nodes: NodeSummary[];
  /** The slowest pulls, slowest first. */
  slowest: SlowPull[];
  /**
   * The current runs' errors, grouped by image and message, most final failures first: the
   * first {@linkcode SummaryOptions.errors} groups.
   */
  errors: ErrorGroup[];
  /** How many error groups there are in all. */
  error_groups: number;
  /**
   * Pulls downloading now, by node and image: the first {@linkcode SummaryOptions.downloading}
   * of them (`progress.downloading` counts them all).
   */
  downloading: DownloadingPull[];
  /** The node x image grid, when asked for. */
  grid?: SummaryGrid;
}

/** Options for `MetricsStore.summary`. */
export interface SummaryOptions {
  /**
   * Include the node x image grid.
   * @default {false}
   */
  grid?: boolean;
  /**
   * How many slowest pulls to list.
   * @default {20}
   */
  slowest?: number;
  /**
   * How many node names each error group lists.
   * @default {10}
   */
  errorNodes?: number;
  /**
   * How many pulls downloading now `downloading` lists (each node lists all of its own).
   * @default {50}
   */
  downloading?: number;
  /**
   * How many error groups `errors` lists.
   * @default {200}
   */
  errors?: number;
}
