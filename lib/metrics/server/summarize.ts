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
  finishedStateOf,
  heldResults,
  type ImageState,
  type InFlight,
  isCurrent,
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
  /** Results held. */
  results: number;
  /** The bound on results held. */
  maxResults: number;
  /** Results refused because the store was full. */
  refusedFull: number;
  /** Results ignored as re-sends of replaced runs. */
  staleIgnored: number;
  /** Runs replaced and folded into counts. */
  runsCompacted: number;
  /** How long a node with images pending may stay silent before it counts as gone, in ms. */
  goneAfterMs: number;
  /** A monotonic clock in milliseconds (what `NodeState.lastSeen` and snapshots are on). */
  now: () => number;
  /** The current time in milliseconds since the epoch, stamped on the summary. */
  wallNow: () => number;
}

/** The failed attempts of one image with one error message, as the walk gathers them. */
interface ErrorTally {
  attempts: number;
  finalFailures: number;
  /** The first nodes, up to the summary's `errorNodes`. */
  nodes: string[];
  nodeCount: number;
  /** The node the walk counted last, so that a node counts once. */
  lastNode: string;
}

/** Overall progress, as {@linkcode MetricsSummary.progress} holds it. */
type Progress = MetricsSummary["progress"];

/** What the cells of one image add up to. */
interface ImageTally {
  /** The instances whose current runs list it. */
  instances: Set<string>;
  /** The instance added to `instances` last. */
  lastInstance?: string;
  /** When its latest final result on a node finished, in seconds since the epoch. */
  lastFinishedAt: number;
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
  /** Cells of its current runs. */
  current: number;
  failedAttempts: number;
  /** When the latest final result of the current runs finished, in seconds since the epoch. */
  lastFinishedAt: number;
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
  /** When the walk started, on the monotonic clock. */
  now: number;
  goneAfterMs: number;
  errorNodes: number;
  /** Nodes still reporting per instance with a current run. */
  instanceNodes: Map<string, number>;
  /** Errors of the current runs, by image, then message. */
  errors: Map<string, Map<string, ErrorTally>>;
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
 *   results: 0,
 *   maxResults: 10,
 *   refusedFull: 0,
 *   staleIgnored: 0,
 *   runsCompacted: 0,
 *   goneAfterMs: 900_000,
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
  const walk = startWalk(imageNames, nodeNames.length, options, source);
  for (const name of nodeNames) walkNode(walk, name, source.nodes.get(name)!, imageNames.length);
  finishProgress(walk.progress);
  const errors = errorGroups(walk.errors);
  const summary: MetricsSummary = {
    generated_at: new Date(source.wallNow()).toISOString(),
    results: source.results,
    max_results: source.maxResults,
    refused_full: source.refusedFull,
    stale_ignored: source.staleIgnored,
    runs_compacted: source.runsCompacted,
    progress: walk.progress,
    images: imageNames.map((image) => imageRow(image, walk, source)),
    nodes: walk.nodes,
    slowest: walk.slowest,
    errors: errors.slice(0, options.errors ?? 200),
    error_groups: errors.length,
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
  source: SummarySource,
): Walk {
  return {
    grid: options.grid ?? false,
    slowestCount: options.slowest ?? 20,
    downloadingLimit: options.downloading ?? 50,
    now: source.now(),
    goneAfterMs: source.goneAfterMs,
    errorNodes: options.errorNodes ?? 10,
    instanceNodes: new Map(),
    errors: new Map(),
    column: new Map(imageNames.map((image, index) => [image, index])),
    perImage: new Map(imageNames.map((image) => [image, {
      instances: new Set<string>(),
      lastFinishedAt: 0,
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
      nodes_gone: 0,
      images: imageNames.length,
      expected: 0,
      done: 0,
      failed: 0,
      pending: 0,
      gone: 0,
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
    current: 0,
    failedAttempts: 0,
    lastFinishedAt: 0,
    bytesInFlight: 0,
    downloading: [],
    letters: walk.grid ? new Array<string>(imageCount).fill(".") : [],
    times: walk.grid ? new Array<number>(imageCount).fill(0) : [],
  };
  for (const cell of node.cells.values()) walkCell(walk, tally, node, cell);
  let total = 0;
  for (const run of node.runs.values()) total += run.imagesTotal;
  if (total === 0) total = tally.current;
  const unfinished = Math.max(0, total - tally.done - tally.failed);
  const silentMs = walk.now - node.lastSeen;
  const gone = unfinished > 0 && silentMs > walk.goneAfterMs;
  const pending = gone ? 0 : unfinished;
  const finished = unfinished === 0;
  if (!gone) {
    for (const instance of node.runs.keys()) {
      walk.instanceNodes.set(instance, (walk.instanceNodes.get(instance) ?? 0) + 1);
    }
  }
  walk.nodes.push(nodeRow(name, node, tally, { total, pending, finished, gone, silentMs }));
  const { progress } = walk;
  progress.downloading += tally.downloading.length;
  progress.bytes_in_flight += tally.bytesInFlight;
  progress.expected += total;
  progress.done += tally.done;
  progress.failed += tally.failed;
  progress.pending += pending;
  if (gone) {
    progress.gone += unfinished;
    progress.nodes_gone++;
  }
  if (finished) progress.nodes_finished++;
  if (walk.grid) {
    walk.states.push(tally.letters.join(""));
    walk.durations.push(tally.times);
  }
}

/** A node's row of the summary, from its tally. */
function nodeRow(
  name: string,
  node: NodeState,
  tally: NodeTally,
  state: { total: number; pending: number; finished: boolean; gone: boolean; silentMs: number },
): NodeSummary {
  const runs = [...node.runs.values()];
  const { history } = node;
  return {
    node: name,
    images_total: state.total,
    done: tally.done,
    failed: tally.failed,
    pending: state.pending,
    failed_attempts: tally.failedAttempts,
    finished: state.finished,
    gone: state.gone,
    last_seen_seconds_ago: Math.max(0, Math.round(state.silentMs / 1000)),
    run_id: runs.map((run) => run.id).join(","),
    run_started_at: runs.length ? Math.min(...runs.map((run) => run.firstStartedAt)) : 0,
    last_finished_at: tally.lastFinishedAt,
    earlier_runs: {
      runs: history.runs,
      attempts: history.attempts,
      failed_attempts: history.failedAttempts,
      pulled: history.pulled,
      bytes_pulled: history.bytesPulled,
    },
    last_started_at: node.lastStartedAt,
    downloading: tally.downloading.sort((a, b) => a.image.localeCompare(b.image)),
    bytes_in_flight: tally.bytesInFlight,
  };
}

/** Counts one cell: its download in flight, its state by finished attempts, its grid entry. */
function walkCell(walk: Walk, tally: NodeTally, node: NodeState, cell: Cell): void {
  const current = isCurrent(node, cell);
  if (cell.inFlight) noteDownload(walk, tally, node.name, cell.inFlight);
  // The counts go by the current run's finished attempts; a download shows in the grid and lists.
  const state = current ? finishedStateOf(cell) : "pending";
  const stats = walk.perImage.get(cell.image)!;
  if (current) {
    tally.current++;
    tally.failedAttempts += cell.failedAttempts;
    // Most cells of an image share one instance: skip the set when it is the last one added.
    if (stats.lastInstance !== cell.run.instance) {
      stats.lastInstance = cell.run.instance;
      stats.instances.add(cell.run.instance);
    }
    noteErrors(walk, node.name, cell);
    const final = cell.final;
    if (final) {
      const finishedAt = final.startedAt + Math.round(final.durationMs / 1000);
      tally.lastFinishedAt = Math.max(tally.lastFinishedAt, finishedAt);
      stats.lastFinishedAt = Math.max(stats.lastFinishedAt, finishedAt);
    }
  }
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
    const index = walk.column.get(cell.image)!;
    const shown = cell.inFlight
      ? "downloading"
      : state === "pending" && cell.earlier
      ? "earlier"
      : state;
    tally.letters[index] = CELL_LETTERS[shown];
    tally.times[index] = cell.inFlight?.result.durationMs ?? cell.final?.durationMs ?? 0;
  }
}

/** Adds a current cell's failed attempts to the error groups. */
function noteErrors(walk: Walk, node: string, cell: Cell): void {
  if (cell.failedAttempts === 0) return;
  for (const result of heldResults(cell)) {
    if (result.outcome !== "attempt-failed" && result.outcome !== "failed") continue;
    let byMessage = walk.errors.get(cell.image);
    if (!byMessage) walk.errors.set(cell.image, byMessage = new Map());
    const message = result.error || "(no error message)";
    let tally = byMessage.get(message);
    if (!tally) {
      byMessage.set(
        message,
        tally = {
          attempts: 0,
          finalFailures: 0,
          nodes: [],
          nodeCount: 0,
          lastNode: "",
        },
      );
    }
    tally.attempts++;
    if (result.outcome === "failed" && cell.final === result) tally.finalFailures++;
    if (tally.lastNode !== node) {
      tally.lastNode = node;
      tally.nodeCount++;
      if (tally.nodes.length < walk.errorNodes) tally.nodes.push(node);
    }
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
  progress.complete = progress.nodes > 0 && progress.pending === 0 &&
    progress.nodes_gone < progress.nodes;
}

/** One image's row: its tally over the nodes, its attempts, durations and size. */
function imageRow(image: string, walk: Walk, source: SummarySource): ImageSummary {
  const stats = walk.perImage.get(image)!;
  const counters = source.images.get(image)!;
  let candidates = 0;
  for (const instance of stats.instances) candidates += walk.instanceNodes.get(instance) ?? 0;
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
  if (stats.lastFinishedAt) summary.last_finished_at = stats.lastFinishedAt;
  return summary;
}

/** The current runs' errors by image and message, the most final failures first. */
function errorGroups(errors: Map<string, Map<string, ErrorTally>>): ErrorGroup[] {
  const groups: ErrorGroup[] = [];
  for (const [image, byMessage] of errors) {
    for (const [error, tally] of byMessage) {
      groups.push({
        image,
        error,
        attempts: tally.attempts,
        final_failures: tally.finalFailures,
        nodes: tally.nodes,
        node_count: tally.nodeCount,
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
