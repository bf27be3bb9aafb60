/**
 * Makes the `GET /summary` document out of a store's aggregates, in one pass over the node x image
 * cells: per-node rows, per-image tallies, the slowest pulls, the downloads in flight and the
 * grid all come from that walk; then per-image rows, error groups and overall progress.
 *
 * @module
 */
import { type MetricsResult, OUTCOMES } from "../protocol.ts";
import {
  type Cell,
  cellStateOf,
  type ErrorState,
  type ImageState,
  type InFlight,
  type NodeState,
} from "./aggregates.ts";
import {
  CELL_LETTERS,
  type DownloadingPull,
  type ErrorGroup,
  type ImageSummary,
  type MetricsSummary,
  type NodeDownload,
  type NodeSummary,
  type SlowPull,
  type SummaryOptions,
} from "./summary.ts";

/** What {@linkcode summarize} reads: a store's aggregates and counts. */
export interface SummarySource {
  /** Every node, by name. */
  nodes: ReadonlyMap<string, NodeState>;
  /** Every image, by name. */
  images: ReadonlyMap<string, ImageState>;
  /** The nodes of each prefetcher instance, by instance ("" when unknown). */
  instanceNodes: ReadonlyMap<string, ReadonlySet<string>>;
  /** Failed attempts by image, then by error message. */
  errors: ReadonlyMap<string, ReadonlyMap<string, ErrorState>>;
  /** Results held. */
  results: number;
  /** The bound on results held. */
  maxResults: number;
  /** Results refused because the store was full. */
  refusedFull: number;
  /** The time of the clock snapshots were received on (monotonic), for their ages. */
  now: () => number;
  /** The current time in milliseconds since the epoch, stamped on the summary. */
  wallNow: () => number;
}

/** Overall progress, as {@linkcode MetricsSummary.progress} holds it. */
type Progress = MetricsSummary["progress"];

/** What the cells of one image add up to. */
interface ImageTally {
  done: number;
  pulled: number;
  failed: number;
  retrying: number;
  /** Durations of the pulls that got it onto a node, in milliseconds. */
  durations: number[];
}

/** What the cells of one node add up to. */
interface NodeTally {
  done: number;
  failed: number;
  bytesInFlight: number;
  downloading: NodeDownload[];
  /** Its grid row: one letter per image (empty without a grid). */
  letters: string[];
  /** Its grid row: the deciding attempt's duration per image (empty without a grid). */
  times: number[];
}

/** What the walk over every cell gathers for the summary's sections. */
interface Walk {
  grid: boolean;
  slowestCount: number;
  downloadingLimit: number;
  /** When the walk started, in milliseconds since the epoch. */
  now: number;
  /** Grid column of each image. */
  column: Map<string, number>;
  perImage: Map<string, ImageTally>;
  slowest: SlowPull[];
  /** The first `downloadingLimit` downloads in flight, in walk order. */
  downloading: DownloadingPull[];
  progress: Progress;
  nodes: NodeSummary[];
  /** Grid rows, one string of letters per node. */
  states: string[];
  /** Grid rows, one duration per image per node. */
  durations: number[][];
}

/**
 * Aggregates everything a store holds into the `/summary` document.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { summarize } from "./summarize.ts";
 *
 * const summary = summarize({
 *   nodes: new Map(),
 *   images: new Map(),
 *   instanceNodes: new Map(),
 *   errors: new Map(),
 *   results: 0,
 *   maxResults: 10,
 *   refusedFull: 0,
 *   now: () => 0,
 *   wallNow: () => 0,
 * }, { grid: true });
 * assert.equal(summary.progress.complete, false);
 * assert.deepEqual(summary.grid, { images: [], nodes: [], states: [], durations: [] });
 * ```
 */
export function summarize(source: SummarySource, options: SummaryOptions = {}): MetricsSummary {
  const imageNames = [...source.images.keys()].sort();
  const nodeNames = [...source.nodes.keys()].sort();
  const walk = startWalk(imageNames, nodeNames.length, options, source.now());
  for (const name of nodeNames) walkNode(walk, name, source.nodes.get(name)!, imageNames.length);
  finishProgress(walk.progress);
  const summary: MetricsSummary = {
    generated_at: new Date(source.wallNow()).toISOString(),
    results: source.results,
    max_results: source.maxResults,
    refused_full: source.refusedFull,
    progress: walk.progress,
    images: imageNames.map((image) => imageRow(image, walk.perImage.get(image)!, source)),
    nodes: walk.nodes,
    slowest: walk.slowest,
    errors: errorGroups(source.errors, options.errorNodes ?? 10),
    downloading: walk.downloading.sort((a, b) =>
      a.node.localeCompare(b.node) || a.image.localeCompare(b.image)
    ),
  };
  if (walk.grid) {
    summary.grid = {
      images: imageNames,
      nodes: nodeNames,
      states: walk.states,
      durations: walk.durations,
    };
  }
  return summary;
}

function startWalk(
  imageNames: string[],
  nodeCount: number,
  options: SummaryOptions,
  now: number,
): Walk {
  return {
    grid: options.grid ?? false,
    slowestCount: options.slowest ?? 20,
    downloadingLimit: options.downloading ?? 50,
    now,
    column: new Map(imageNames.map((image, index) => [image, index])),
    perImage: new Map(imageNames.map((image) => [image, {
      done: 0,
      pulled: 0,
      failed: 0,
      retrying: 0,
      durations: [],
    }])),
    slowest: [],
    downloading: [],
    progress: {
      nodes: nodeCount,
      nodes_finished: 0,
      images: imageNames.length,
      expected: 0,
      done: 0,
      failed: 0,
      pending: 0,
      percent: 0,
      complete: false,
      downloading: 0,
      bytes_in_flight: 0,
      bytes_per_second: 0,
    },
    nodes: [],
    states: [],
    durations: [],
  };
}

/** Tallies a node's cells, then adds its row (and grid row) and its share of the progress. */
function walkNode(walk: Walk, name: string, node: NodeState, imageCount: number): void {
  const tally: NodeTally = {
    done: 0,
    failed: 0,
    bytesInFlight: 0,
    downloading: [],
    letters: walk.grid ? new Array<string>(imageCount).fill(".") : [],
    times: walk.grid ? new Array<number>(imageCount).fill(0) : [],
  };
  for (const [image, cell] of node.cells) walkCell(walk, tally, name, image, cell);
  let total = 0;
  for (const count of node.imagesTotal.values()) total += count;
  if (total === 0) total = node.cells.size;
  const pending = Math.max(0, total - tally.done - tally.failed);
  const finished = pending === 0;
  walk.nodes.push({
    node: name,
    images_total: total,
    done: tally.done,
    failed: tally.failed,
    pending,
    failed_attempts: node.failedAttempts,
    finished,
    last_started_at: node.lastStartedAt,
    downloading: tally.downloading.sort((a, b) => a.image.localeCompare(b.image)),
    bytes_in_flight: tally.bytesInFlight,
  });
  const { progress } = walk;
  progress.downloading += tally.downloading.length;
  progress.bytes_in_flight += tally.bytesInFlight;
  progress.expected += total;
  progress.done += tally.done;
  progress.failed += tally.failed;
  progress.pending += pending;
  if (finished) progress.nodes_finished++;
  if (walk.grid) {
    walk.states.push(tally.letters.join(""));
    walk.durations.push(tally.times);
  }
}

/** Counts one cell: its download in flight, its state by finished attempts, its grid entry. */
function walkCell(walk: Walk, tally: NodeTally, node: string, image: string, cell: Cell): void {
  if (cell.inFlight) noteDownload(walk, tally, node, cell.inFlight);
  // The counts go by finished attempts; a download shows in the grid and the lists.
  const state = cellStateOf({ ...cell, inFlight: undefined });
  const stats = walk.perImage.get(image)!;
  if (state === "pulled" || state === "present") {
    tally.done++;
    stats.done++;
    if (state === "pulled") {
      stats.pulled++;
      const final = cell.final!;
      stats.durations.push(final.durationMs);
      if (walk.slowestCount > 0) walk.slowest = pushSlow(walk.slowest, final, walk.slowestCount);
    }
  } else if (state === "failed") {
    tally.failed++;
    stats.failed++;
  } else if (state === "retrying") {
    stats.retrying++;
  }
  if (walk.grid) {
    const index = walk.column.get(image)!;
    tally.letters[index] = CELL_LETTERS[cell.inFlight ? "downloading" : state];
    tally.times[index] = cell.inFlight?.result.durationMs ?? cell.final?.durationMs ?? 0;
  }
}

function noteDownload(walk: Walk, tally: NodeTally, node: string, inFlight: InFlight): void {
  const entry = describeDownload(inFlight, walk.now);
  tally.downloading.push(entry);
  tally.bytesInFlight += entry.received_bytes;
  walk.progress.bytes_per_second += entry.bytes_per_second;
  if (walk.downloading.length < walk.downloadingLimit) walk.downloading.push({ node, ...entry });
}

function finishProgress(progress: Progress): void {
  progress.percent = progress.expected === 0
    ? 0
    : Math.floor(((progress.done + progress.failed) / progress.expected) * 1000) / 10;
  progress.complete = progress.nodes > 0 && progress.pending === 0;
}

/** One image's row: its tally over the nodes, its attempts, durations and size. */
function imageRow(image: string, stats: ImageTally, source: SummarySource): ImageSummary {
  const counters = source.images.get(image)!;
  let candidates = 0;
  for (const instance of counters.instances) {
    candidates += source.instanceNodes.get(instance)?.size ?? 0;
  }
  const sorted = stats.durations.sort((a, b) => a - b);
  const summary: ImageSummary = {
    image,
    nodes_done: stats.done,
    nodes_pulled: stats.pulled,
    nodes_failed: stats.failed,
    nodes_pending: Math.max(0, candidates - stats.done - stats.failed),
    nodes_retrying: stats.retrying,
    attempts: OUTCOMES.reduce((sum, outcome) => sum + counters.attempts[outcome], 0),
    failed_attempts: counters.attempts["attempt-failed"] + counters.attempts.failed,
  };
  if (sorted.length > 0) {
    summary.p50_ms = percentile(sorted, 0.5);
    summary.p95_ms = percentile(sorted, 0.95);
    summary.max_ms = sorted[sorted.length - 1];
  }
  if (counters.size) summary.size_bytes = counters.size;
  return summary;
}

/** Every error by image and message, the most final failures first, then the most attempts. */
function errorGroups(
  errors: ReadonlyMap<string, ReadonlyMap<string, ErrorState>>,
  errorNodes: number,
): ErrorGroup[] {
  const groups: ErrorGroup[] = [];
  for (const [image, byMessage] of errors) {
    for (const [error, state] of byMessage) {
      groups.push({
        image,
        error,
        attempts: state.attempts,
        final_failures: state.finalNodes.size,
        nodes: [...state.nodes].slice(0, errorNodes),
        node_count: state.nodes.size,
      });
    }
  }
  return groups.sort((a, b) =>
    b.final_failures - a.final_failures || b.attempts - a.attempts ||
    a.image.localeCompare(b.image)
  );
}

/** What `/summary` says of a download in flight: its bytes, rate, percent and time left. */
function describeDownload(entry: InFlight, now: number): NodeDownload {
  const { result } = entry;
  const received = result.bytesReceived ?? 0;
  const rate = result.throughputBytesPerSecond ?? 0;
  const download: NodeDownload = {
    image: result.image,
    attempt: result.attempt,
    attempt_id: result.attemptId,
    received_bytes: received,
    bytes_per_second: rate,
    elapsed_ms: result.durationMs,
    updated_seconds_ago: Math.max(0, Math.round((now - entry.receivedAt) / 1000)),
  };
  if (result.storedBytes) download.stored_bytes = result.storedBytes;
  const total = result.totalBytes;
  if (total) {
    download.total_bytes = total;
    // What is on the node counts, not only what this attempt got: earlier attempts' layers stay.
    const have = Math.min(total, Math.max(result.storedBytes ?? 0, received));
    download.percent = Math.floor((have / total) * 1000) / 10;
    if (rate > 0) download.eta_seconds = Math.ceil((total - have) / rate);
  }
  return download;
}

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: number[], fraction: number): number {
  return sorted[Math.max(0, Math.ceil(fraction * sorted.length) - 1)];
}

/** Adds a pull to the slowest ones (slowest first), keeping `keep` of them. */
function pushSlow(list: SlowPull[], result: MetricsResult, keep: number): SlowPull[] {
  if (list.length >= keep && list[list.length - 1].duration_ms >= result.durationMs) return list;
  const entry: SlowPull = {
    node: result.node,
    image: result.image,
    duration_ms: result.durationMs,
    attempt: result.attempt,
  };
  if (result.sizeBytes) entry.size_bytes = result.sizeBytes;
  list.push(entry);
  list.sort((a, b) => b.duration_ms - a.duration_ms);
  if (list.length > keep) list.length = keep;
  return list;
}
