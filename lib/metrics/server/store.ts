/**
 * The aggregator's memory: every pull attempt received, one per `attempt_id`, bounded, and kept
 * aggregated as it arrives (per node and image, per image, per outcome) so that `/summary`,
 * the Prometheus exposition and the HTML report are cheap to answer at 5,000 nodes x 100 images.
 *
 * `in-progress` results are not attempts: they are kept apart, only the latest one per attempt
 * id, in a bounded map, and each is dropped when its attempt's finished result arrives (or a
 * finished result of a later attempt of the same image on the same node), or when no newer one
 * came for a while. They show what is downloading now; they never count as attempts.
 *
 * @module
 */
import { type AttemptOutcome, isFinal, type MetricsResult, OUTCOMES } from "../protocol.ts";

/** Options for {@linkcode MetricsStore}. */
export interface MetricsStoreOptions {
  /**
   * The most results kept; past it, results with new attempt ids are refused.
   * @default {1_000_000}
   */
  maxResults?: number;
  /**
   * The most `in-progress` snapshots kept (one per running attempt); past it, the one updated
   * longest ago is forgotten.
   * @default {100_000}
   */
  maxInProgress?: number;
  /**
   * How long an `in-progress` snapshot stands without a newer one or its attempt's result, in
   * milliseconds; past it the attempt is taken for gone (its node stopped reporting).
   * @default {600_000}
   */
  inProgressMaxAgeMs?: number;
  /**
   * The current time in milliseconds since the epoch, stamped on summaries.
   * @default {Date.now}
   */
  now?: () => number;
}

/** The store holds `maxResults` results already; the new one was not kept. */
export class StoreFullError extends Error {
  /** Creates the error for a store of `maxResults`. */
  constructor(readonly maxResults: number) {
    super(
      `the server already holds ${maxResults} results, its --max-results; restart it with a ` +
        "higher --max-results (and memory) to accept more",
    );
    this.name = "StoreFullError";
  }
}

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

/**
 * Where an image stands on a node: `downloading` (an attempt is downloading it now), `pulled` /
 * `present` (done), `failed` (final), `retrying` (only failed attempts so far, more to come) or
 * `pending` (nothing received yet).
 */
export type CellState = "downloading" | "pulled" | "present" | "failed" | "retrying" | "pending";

/** One letter per {@linkcode CellState}, as the summary's grid writes them. */
export const CELL_LETTERS: Readonly<Record<CellState, string>> = Object.freeze({
  downloading: "d",
  pulled: "P",
  present: "p",
  failed: "F",
  retrying: "r",
  pending: ".",
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
  /** Attempts that failed there. */
  failed_attempts: number;
  /** Every image of the node is done or failed. */
  finished: boolean;
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
  /** Per node, one {@linkcode CELL_LETTERS} letter per image. */
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
  /** Overall progress. */
  progress: {
    nodes: number;
    nodes_finished: number;
    images: number;
    /** Node-image pairs expected: each node's `images_total` (or what it reported, if unknown). */
    expected: number;
    done: number;
    failed: number;
    pending: number;
    /** `(done + failed) / expected` in percent, one decimal. */
    percent: number;
    /** Nodes have reported and none has anything pending. */
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
  /** Every error, grouped by image and message, most frequent first. */
  errors: ErrorGroup[];
  /**
   * Pulls downloading now, by node and image: the first {@linkcode SummaryOptions.downloading}
   * of them (`progress.downloading` counts them all).
   */
  downloading: DownloadingPull[];
  /** The node x image grid, when asked for. */
  grid?: SummaryGrid;
}

/** Options for {@linkcode MetricsStore.summary}. */
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
}

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

interface Cell {
  /** The final result that decides the cell, if any. */
  final?: MetricsResult;
  failedAttempts: number;
  /** The latest `started_at` of a finished attempt (any outcome) of the cell. */
  lastFinishedStartedAt: number;
  /** The attempt downloading now, when one is. */
  inFlight?: InFlight;
}

/** The latest `in-progress` result of a running attempt. */
interface InFlight {
  result: MetricsResult;
  /** When the server received it, in milliseconds since the epoch. */
  receivedAt: number;
  cell: Cell;
}

interface NodeState {
  cells: Map<string, Cell>;
  /** images_total per instance. */
  imagesTotal: Map<string, number>;
  failedAttempts: number;
  lastStartedAt: number;
}

type ImageState = ImageCounters & { instances: Set<string>; size: number };

interface ErrorState {
  attempts: number;
  finalNodes: Set<string>;
  nodes: Set<string>;
}

/** Keeps results, one per attempt id, and their aggregates. */
export class MetricsStore {
  readonly #results = new Map<string, MetricsResult>();
  /** By attempt id, least recently updated first. */
  readonly #inFlight = new Map<string, InFlight>();
  readonly #nodes = new Map<string, NodeState>();
  readonly #images = new Map<string, ImageState>();
  readonly #instanceNodes = new Map<string, Set<string>>();
  readonly #errors = new Map<string, Map<string, ErrorState>>();
  readonly #strings = new Map<string, string>();
  readonly #maxResults: number;
  readonly #maxInProgress: number;
  readonly #inProgressMaxAgeMs: number;
  readonly #now: () => number;
  #refusedFull = 0;
  #version = 0;
  #cached?: { version: number; grid: boolean; summary: MetricsSummary };

  /** Creates an empty store. */
  constructor(options: MetricsStoreOptions = {}) {
    this.#maxResults = options.maxResults ?? 1_000_000;
    this.#maxInProgress = options.maxInProgress ?? 100_000;
    this.#inProgressMaxAgeMs = options.inProgressMaxAgeMs ?? 600_000;
    this.#now = options.now ?? Date.now;
  }

  /** How many results are held (attempts; `in-progress` snapshots are not counted). */
  get size(): number {
    return this.#results.size;
  }

  /** How many attempts are downloading now, by their `in-progress` snapshots. */
  get inProgressCount(): number {
    this.#expire();
    return this.#inFlight.size;
  }

  /** The bound on results held. */
  get maxResults(): number {
    return this.#maxResults;
  }

  /** How many results were refused because the store was full. */
  get refusedFull(): number {
    return this.#refusedFull;
  }

  /** Changes whenever a result is added (or a snapshot of a running attempt comes or goes). */
  get version(): number {
    return this.#version;
  }

  /** How many distinct nodes have reported. */
  get nodeCount(): number {
    return this.#nodes.size;
  }

  /** Returns one shared copy of equal strings (node and image names repeat a lot). */
  intern(text: string): string {
    const known = this.#strings.get(text);
    if (known !== undefined) return known;
    if (this.#strings.size < 1_000_000) this.#strings.set(text, text);
    return text;
  }

  /**
   * Keeps a result, unless one with its attempt id is held already. An `in-progress` result
   * replaces the attempt's previous one instead, and is ignored once the attempt has finished; a
   * finished result drops the `in-progress` one of its attempt (same attempt id) and of any
   * earlier attempt of its node and image.
   *
   * @returns `added`, or `duplicate` when the attempt id was known (the result is ignored), or,
   * for `in-progress`, when the attempt is over or a newer snapshot is held.
   * @throws {StoreFullError} when the store holds `maxResults` results.
   */
  add(result: MetricsResult): "added" | "duplicate" {
    if (result.outcome === "in-progress") return this.#addInProgress(result);
    // The attempt is over whether or not there is room for its result.
    this.#dropInFlight(result.attemptId);
    if (this.#results.has(result.attemptId)) return "duplicate";
    if (this.#results.size >= this.#maxResults) {
      this.#refusedFull++;
      throw new StoreFullError(this.#maxResults);
    }
    this.#results.set(result.attemptId, result);
    this.#version++;
    this.#aggregate(result as MetricsResult & { outcome: AttemptOutcome });
    return "added";
  }

  /** The latest `in-progress` results, one per attempt downloading now, least recent first. */
  *inProgress(): IterableIterator<MetricsResult> {
    this.#expire();
    for (const entry of this.#inFlight.values()) yield entry.result;
  }

  #addInProgress(result: MetricsResult): "added" | "duplicate" {
    if (this.#results.has(result.attemptId)) return "duplicate";
    const known = this.#inFlight.get(result.attemptId);
    if (known && result.durationMs < known.result.durationMs) return "duplicate";
    const { cell } = this.#register(result);
    if (result.startedAt < cell.lastFinishedStartedAt) return "duplicate";
    const other = cell.inFlight;
    if (other && other.result.attemptId !== result.attemptId) {
      if (result.startedAt < other.result.startedAt) return "duplicate";
      this.#dropInFlight(other.result.attemptId);
    }
    this.#inFlight.delete(result.attemptId);
    while (this.#inFlight.size >= this.#maxInProgress) {
      this.#dropInFlight(this.#inFlight.keys().next().value!);
    }
    const entry: InFlight = { result, receivedAt: this.#now(), cell };
    this.#inFlight.set(result.attemptId, entry);
    cell.inFlight = entry;
    this.#version++;
    return "added";
  }

  #dropInFlight(attemptId: string): void {
    const entry = this.#inFlight.get(attemptId);
    if (!entry) return;
    this.#inFlight.delete(attemptId);
    if (entry.cell.inFlight === entry) entry.cell.inFlight = undefined;
    this.#version++;
  }

  /** Forgets the snapshots that got no newer one for `inProgressMaxAgeMs`. */
  #expire(): void {
    const oldest = this.#now() - this.#inProgressMaxAgeMs;
    for (const [attemptId, entry] of this.#inFlight) {
      // Least recently updated first: the first one young enough ends the search.
      if (entry.receivedAt >= oldest) break;
      this.#dropInFlight(attemptId);
    }
  }

  /** Every result held, in the order they arrived. */
  results(): IterableIterator<MetricsResult> {
    return this.#results.values();
  }

  /** Per-image counters, by image. */
  imageCounters(): ReadonlyMap<string, ImageCounters> {
    return this.#images;
  }

  /** Where `image` stands on `node`. */
  cellState(node: string, image: string): CellState {
    this.#expire();
    const cell = this.#nodes.get(node)?.cells.get(image);
    return cell ? stateOf(cell) : "pending";
  }

  /** Makes the node, image and cell of a result known, without counting anything. */
  #register(result: MetricsResult): { node: NodeState; cell: Cell; image: ImageState } {
    const instance = result.instance ?? "";
    let node = this.#nodes.get(result.node);
    if (!node) {
      node = { cells: new Map(), imagesTotal: new Map(), failedAttempts: 0, lastStartedAt: 0 };
      this.#nodes.set(result.node, node);
    }
    if (result.imagesTotal) node.imagesTotal.set(instance, result.imagesTotal);
    node.lastStartedAt = Math.max(node.lastStartedAt, result.startedAt);
    let instanceNodes = this.#instanceNodes.get(instance);
    if (!instanceNodes) this.#instanceNodes.set(instance, instanceNodes = new Set());
    instanceNodes.add(result.node);

    let image = this.#images.get(result.image);
    if (!image) {
      image = {
        attempts: { pulled: 0, present: 0, "attempt-failed": 0, failed: 0 },
        durationBuckets: new Array(DURATION_BUCKETS_SECONDS.length + 1).fill(0),
        durationSumSeconds: 0,
        bytesPulled: 0,
        instances: new Set(),
        size: 0,
      };
      this.#images.set(result.image, image);
    }
    image.instances.add(instance);
    let cell = node.cells.get(result.image);
    if (!cell) {
      node.cells.set(result.image, cell = { failedAttempts: 0, lastFinishedStartedAt: 0 });
    }
    return { node, cell, image };
  }

  #aggregate(result: MetricsResult & { outcome: AttemptOutcome }): void {
    const { node, cell, image } = this.#register(result);
    image.attempts[result.outcome]++;
    image.size = Math.max(image.size, result.sizeBytes ?? 0);
    if (result.outcome === "pulled") {
      const seconds = result.durationMs / 1000;
      let bucket = DURATION_BUCKETS_SECONDS.findIndex((bound) => seconds <= bound);
      if (bucket < 0) bucket = DURATION_BUCKETS_SECONDS.length;
      image.durationBuckets[bucket]++;
      image.durationSumSeconds += seconds;
      image.bytesPulled += result.sizeBytes ?? 0;
    }

    cell.lastFinishedStartedAt = Math.max(cell.lastFinishedStartedAt, result.startedAt);
    // A finished attempt that started later ends any attempt before it.
    const earlier = cell.inFlight;
    if (earlier && earlier.result.startedAt < result.startedAt) {
      this.#dropInFlight(earlier.result.attemptId);
    }
    if (result.outcome === "attempt-failed" || result.outcome === "failed") {
      cell.failedAttempts++;
      node.failedAttempts++;
      this.#noteError(result);
    }
    if (isFinal(result.outcome) && decides(result, cell.final)) cell.final = result;
  }

  #noteError(result: MetricsResult): void {
    const message = result.error || "(no error message)";
    let byMessage = this.#errors.get(result.image);
    if (!byMessage) this.#errors.set(result.image, byMessage = new Map());
    let state = byMessage.get(message);
    if (!state) {
      byMessage.set(message, state = { attempts: 0, finalNodes: new Set(), nodes: new Set() });
    }
    state.attempts++;
    state.nodes.add(result.node);
    if (result.outcome === "failed") state.finalNodes.add(result.node);
  }

  /** Aggregates everything held into the `/summary` document (cached until the next add). */
  summary(options: SummaryOptions = {}): MetricsSummary {
    this.#expire();
    const grid = options.grid ?? false;
    const cached = this.#cached;
    if (cached && cached.version === this.#version && cached.grid === grid) {
      return cached.summary;
    }
    const summary = this.#summarize(options);
    this.#cached = { version: this.#version, grid, summary };
    return summary;
  }

  #summarize(options: SummaryOptions): MetricsSummary {
    const imageNames = [...this.#images.keys()].sort();
    const nodeNames = [...this.#nodes.keys()].sort();
    const perImage = new Map(imageNames.map((image) => [image, {
      done: 0,
      pulled: 0,
      failed: 0,
      retrying: 0,
      durations: [] as number[],
    }]));
    const slowestCount = options.slowest ?? 20;
    let slowest: SlowPull[] = [];
    const nodes: NodeSummary[] = [];
    const progress = {
      nodes: nodeNames.length,
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
    };
    const now = this.#now();
    const downloadingLimit = options.downloading ?? 50;
    const downloadingAll: DownloadingPull[] = [];
    const states: string[] = [];
    const durations: number[][] = [];
    const column = new Map(imageNames.map((image, index) => [image, index]));
    for (const name of nodeNames) {
      const node = this.#nodes.get(name)!;
      let done = 0, failed = 0, bytesInFlight = 0;
      const downloading: NodeDownload[] = [];
      const letters = options.grid ? new Array<string>(imageNames.length).fill(".") : [];
      const times = options.grid ? new Array<number>(imageNames.length).fill(0) : [];
      for (const [image, cell] of node.cells) {
        const stats = perImage.get(image)!;
        if (cell.inFlight) {
          const entry = describeDownload(cell.inFlight, now);
          downloading.push(entry);
          bytesInFlight += entry.received_bytes;
          progress.bytes_per_second += entry.bytes_per_second;
          if (downloadingAll.length < downloadingLimit) {
            downloadingAll.push({ node: name, ...entry });
          }
        }
        // The counts go by finished attempts; a download shows in the grid and the lists.
        const state = stateOf({ ...cell, inFlight: undefined });
        if (state === "pulled" || state === "present") {
          done++;
          stats.done++;
          if (state === "pulled") {
            stats.pulled++;
            const final = cell.final!;
            stats.durations.push(final.durationMs);
            if (slowestCount > 0) {
              slowest = pushSlow(slowest, final, slowestCount);
            }
          }
        } else if (state === "failed") {
          failed++;
          stats.failed++;
        } else if (state === "retrying") {
          stats.retrying++;
        }
        if (options.grid) {
          const index = column.get(image)!;
          letters[index] = CELL_LETTERS[cell.inFlight ? "downloading" : state];
          times[index] = cell.inFlight?.result.durationMs ?? cell.final?.durationMs ?? 0;
        }
      }
      let total = 0;
      for (const count of node.imagesTotal.values()) total += count;
      if (total === 0) total = node.cells.size;
      const pending = Math.max(0, total - done - failed);
      const finished = pending === 0;
      nodes.push({
        node: name,
        images_total: total,
        done,
        failed,
        pending,
        failed_attempts: node.failedAttempts,
        finished,
        last_started_at: node.lastStartedAt,
        downloading: downloading.sort((a, b) => a.image.localeCompare(b.image)),
        bytes_in_flight: bytesInFlight,
      });
      progress.downloading += downloading.length;
      progress.bytes_in_flight += bytesInFlight;
      progress.expected += total;
      progress.done += done;
      progress.failed += failed;
      progress.pending += pending;
      if (finished) progress.nodes_finished++;
      if (options.grid) {
        states.push(letters.join(""));
        durations.push(times);
      }
    }
    progress.percent = progress.expected === 0
      ? 0
      : Math.floor(((progress.done + progress.failed) / progress.expected) * 1000) / 10;
    progress.complete = progress.nodes > 0 && progress.pending === 0;

    const images: ImageSummary[] = imageNames.map((image) => {
      const stats = perImage.get(image)!;
      const counters = this.#images.get(image)!;
      let candidates = 0;
      for (const instance of counters.instances) {
        candidates += this.#instanceNodes.get(instance)?.size ?? 0;
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
    });

    const errorNodes = options.errorNodes ?? 10;
    const errors: ErrorGroup[] = [];
    for (const [image, byMessage] of this.#errors) {
      for (const [error, state] of byMessage) {
        errors.push({
          image,
          error,
          attempts: state.attempts,
          final_failures: state.finalNodes.size,
          nodes: [...state.nodes].slice(0, errorNodes),
          node_count: state.nodes.size,
        });
      }
    }
    errors.sort((a, b) =>
      b.final_failures - a.final_failures || b.attempts - a.attempts ||
      a.image.localeCompare(b.image)
    );

    const summary: MetricsSummary = {
      generated_at: new Date(this.#now()).toISOString(),
      results: this.#results.size,
      max_results: this.#maxResults,
      refused_full: this.#refusedFull,
      progress,
      images,
      nodes,
      slowest,
      errors,
      downloading: downloadingAll.sort((a, b) =>
        a.node.localeCompare(b.node) || a.image.localeCompare(b.image)
      ),
    };
    if (options.grid) summary.grid = { images: imageNames, nodes: nodeNames, states, durations };
    return summary;
  }
}

function stateOf(cell: Cell): CellState {
  if (cell.inFlight) return "downloading";
  if (cell.final) return cell.final.outcome as "pulled" | "present" | "failed";
  return cell.failedAttempts > 0 ? "retrying" : "pending";
}

/**
 * Whether a final result replaces the current one: the later run wins (a node's fetch may run
 * again after a restart); at the same second, having the image wins over failing.
 */
function decides(candidate: MetricsResult, current: MetricsResult | undefined): boolean {
  if (!current) return true;
  if (candidate.startedAt !== current.startedAt) return candidate.startedAt > current.startedAt;
  return current.outcome === "failed" && candidate.outcome !== "failed";
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
