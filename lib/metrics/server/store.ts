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
import { type Clock, systemClock } from "../../core/clock.ts";
import { type AttemptOutcome, isFinal, type MetricsResult } from "../protocol.ts";
import {
  type Cell,
  cellStateOf,
  DURATION_BUCKETS_SECONDS,
  type ErrorState,
  type ImageCounters,
  type ImageState,
  type InFlight,
  type NodeState,
} from "./aggregates.ts";
import type { CellState, MetricsSummary, SummaryOptions } from "./summary.ts";
import { summarize } from "./summarize.ts";

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
   * Ages snapshots on its monotonic `now` (a wall-clock step neither expires them early nor keeps
   * them), and stamps summaries with `wallNow`.
   * @default {systemClock}
   */
  clock?: Pick<Clock, "now" | "wallNow">;
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
  readonly #clock: Pick<Clock, "now" | "wallNow">;
  #refusedFull = 0;
  #version = 0;
  #cached?: { version: number; options: string; summary: MetricsSummary };

  /** Creates an empty store. */
  constructor(options: MetricsStoreOptions = {}) {
    this.#maxResults = options.maxResults ?? 1_000_000;
    this.#maxInProgress = options.maxInProgress ?? 100_000;
    this.#inProgressMaxAgeMs = options.inProgressMaxAgeMs ?? 600_000;
    this.#clock = options.clock ?? systemClock;
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
    const entry: InFlight = { result, receivedAt: this.#clock.now(), cell };
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
    const oldest = this.#clock.now() - this.#inProgressMaxAgeMs;
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
    return cell ? cellStateOf(cell) : "pending";
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
    // Cached per set of options: a summary asked with other limits is computed anew.
    const key = JSON.stringify([
      options.grid ?? false,
      options.slowest,
      options.errorNodes,
      options.downloading,
    ]);
    const cached = this.#cached;
    if (cached && cached.version === this.#version && cached.options === key) {
      return cached.summary;
    }
    const summary = summarize({
      nodes: this.#nodes,
      images: this.#images,
      instanceNodes: this.#instanceNodes,
      errors: this.#errors,
      results: this.#results.size,
      maxResults: this.#maxResults,
      refusedFull: this.#refusedFull,
      now: () => this.#clock.now(),
      wallNow: () => this.#clock.wallNow(),
    }, options);
    this.#cached = { version: this.#version, options: key, summary };
    return summary;
  }
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
