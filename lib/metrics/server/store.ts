/**
 * The aggregator's memory, bounded and compacted by run: for each node and instance the results
 * of its current run are kept in full (one per `attempt_id`, at most
 * {@linkcode MAX_HELD_PER_CELL} per node and image), while the runs before it live on only as
 * counters (per image for Prometheus, per node as its history) and as each cell's earlier
 * outcome. What a run is, and which run a result belongs to: `node_runs.ts`. Aggregates are kept
 * as results arrive, so `/summary`, the Prometheus exposition and the HTML report stay cheap at
 * 5,000 nodes x 100 images.
 *
 * `in-progress` results are not attempts: only the latest one per attempt id is kept, in a
 * bounded map, dropped when its attempt's finished result arrives (or a finished result of a
 * later attempt of the same image on the same node), or when no newer one came for a while.
 *
 * Everything keyed by what clients send is bounded: results held (`maxResults`), nodes
 * (`maxNodes`; a node not heard from for `goneAfterMs` makes room), images (`maxImages`; an image
 * no node refers to makes room), snapshots in flight (`maxInProgress`), instances per node
 * ({@linkcode MAX_INSTANCES_PER_NODE}), images per node ({@linkcode MAX_IMAGES_PER_NODE}),
 * remembered run ids per node and shared strings. Past a
 * bound a result is refused with a {@linkcode StoreLimitError} naming it.
 *
 * @module
 */
import { type Clock, systemClock } from "../../core/clock.ts";
import { type AttemptOutcome, isFinal, type MetricsResult } from "../protocol.ts";
import {
  type Cell,
  cellStateOf,
  DURATION_BUCKETS_SECONDS,
  emptyHistory,
  heldResults,
  type ImageCounters,
  type ImageState,
  type InFlight,
  isCurrent,
  type NodeRun,
  type NodeState,
} from "./aggregates.ts";
import { decideRun, noteInRun, retireRunId } from "./node_runs.ts";
import type { CellState, MetricsSummary, SummaryOptions } from "./summary.ts";
import { summarize } from "./summarize.ts";
import { type JournalRecord, restoreRecord, snapshotRecords } from "./store_snapshot.ts";

/** The most finished results kept per node and image in a run; older ones become counts. */
export const MAX_HELD_PER_CELL = 8;

/** The most prefetcher instances with a current run on one node. */
export const MAX_INSTANCES_PER_NODE = 16;

/** The most distinct images one node may report (its cells). */
export const MAX_IMAGES_PER_NODE = 2_000;

/** The most distinct strings shared between results (node, image, instance, image ref, error). */
const MAX_INTERNED = 200_000;

/** The most characters those shared strings hold together; past it new strings are not shared. */
const MAX_INTERNED_CHARS = 16_000_000;

/** Strings longer than this are never shared (a long error is seldom repeated word for word). */
const MAX_INTERNED_LENGTH = 512;

/** Options for {@linkcode MetricsStore}. */
export interface MetricsStoreOptions {
  /**
   * The most results held (the current runs' finished attempts); past it, results with new
   * attempt ids are refused. Older runs do not count: they are folded into counters.
   * @default {1_000_000}
   */
  maxResults?: number;
  /**
   * The most distinct nodes; past it, the node not heard from for the longest makes room if it
   * is gone (see `goneAfterMs`), else results of new nodes are refused.
   * @default {20_000}
   */
  maxNodes?: number;
  /**
   * The most distinct images; past it, an image no node refers to any more makes room, else
   * results of new images are refused.
   * @default {5_000}
   */
  maxImages?: number;
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
   * A node with images pending that the server has not heard from for this long, in
   * milliseconds, is shown as gone rather than pending (and may make room for a new node).
   * @default {900_000}
   */
  goneAfterMs?: number;
  /**
   * Ages nodes and snapshots on its monotonic `now` (a wall-clock step neither expires them early
   * nor keeps them), and stamps summaries with `wallNow`.
   * @default {systemClock}
   */
  clock?: Pick<Clock, "now" | "wallNow">;
}

/** The store holds `maxResults` results already; the new one was not kept. */
export class StoreFullError extends Error {
  /** Creates the error for a store of `maxResults`. */
  constructor(readonly maxResults: number) {
    super(
      `the server already holds ${maxResults} results of current runs, its --max-results; ` +
        "restart it with a higher --max-results (and memory) to accept more",
    );
    this.name = "StoreFullError";
  }
}

/** A result would pass one of the store's bounds on what clients send (nodes, images…). */
export class StoreLimitError extends Error {
  /** Creates the error; `kind` names the bound, for logging once per kind. */
  constructor(
    readonly kind: "nodes" | "images" | "instances" | "images-per-node",
    message: string,
  ) {
    super(message);
    this.name = "StoreLimitError";
  }
}

/** Where a finished or in-progress result goes. */
interface Place {
  node: NodeState;
  cell: Cell;
  image: ImageState;
}

/** Keeps the current runs' results and the aggregates of every run. */
export class MetricsStore {
  /** The held results by attempt id, in the order they arrived. */
  readonly #results = new Map<string, MetricsResult>();
  /** By attempt id, least recently updated first. */
  readonly #inFlight = new Map<string, InFlight>();
  readonly #nodes = new Map<string, NodeState>();
  readonly #images = new Map<string, ImageState>();
  readonly #strings = new Map<string, string>();
  #internedChars = 0;
  readonly #maxResults: number;
  readonly #maxNodes: number;
  readonly #maxImages: number;
  readonly #maxInProgress: number;
  readonly #inProgressMaxAgeMs: number;
  readonly #goneAfterMs: number;
  readonly #clock: Pick<Clock, "now" | "wallNow">;
  #refusedFull = 0;
  #staleIgnored = 0;
  #version = 0;
  #cached?: { version: number; options: string; at: number; summary: MetricsSummary };

  /** Creates an empty store. */
  constructor(options: MetricsStoreOptions = {}) {
    this.#maxResults = options.maxResults ?? 1_000_000;
    this.#maxNodes = options.maxNodes ?? 20_000;
    this.#maxImages = options.maxImages ?? 5_000;
    this.#maxInProgress = options.maxInProgress ?? 100_000;
    this.#inProgressMaxAgeMs = options.inProgressMaxAgeMs ?? 600_000;
    this.#goneAfterMs = options.goneAfterMs ?? 900_000;
    this.#clock = options.clock ?? systemClock;
  }

  /** How many results are held (current runs' attempts; snapshots are not counted). */
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

  /** How many results were ignored as re-sends of runs already replaced. */
  get staleIgnored(): number {
    return this.#staleIgnored;
  }

  /** How many runs of the nodes tracked were replaced by a later one and folded into counts. */
  get runsCompacted(): number {
    let runs = 0;
    for (const node of this.#nodes.values()) runs += node.history.runs;
    return runs;
  }

  /** Changes whenever a result is added (or a snapshot of a running attempt comes or goes). */
  get version(): number {
    return this.#version;
  }

  /** How many strings the table of shared strings holds. */
  get sharedStrings(): number {
    return this.#strings.size;
  }

  /** How many distinct nodes have reported. */
  get nodeCount(): number {
    return this.#nodes.size;
  }

  /**
   * Returns one shared copy of equal strings (node, image and error strings repeat a lot), for
   * strings of up to 512 characters while the table holds fewer than 200,000 strings and 16 M
   * characters; past that a string is returned as it is.
   */
  intern(text: string): string {
    if (text.length > MAX_INTERNED_LENGTH) return text;
    const known = this.#strings.get(text);
    if (known !== undefined) return known;
    if (this.#strings.size < MAX_INTERNED && this.#internedChars < MAX_INTERNED_CHARS) {
      this.#strings.set(text, text);
      this.#internedChars += text.length;
    }
    return text;
  }

  /**
   * Keeps a result, unless one with its attempt id is held already or its run was replaced. An
   * `in-progress` result replaces the attempt's previous one instead, and is ignored once the
   * attempt has finished; a finished result drops the `in-progress` one of its attempt (same
   * attempt id) and of any earlier attempt of its node and image. A result of a new run replaces
   * its node and instance's current run (see `node_runs.ts`).
   *
   * @returns `added`, or `duplicate` when the result is ignored: its attempt id is held, its run
   * was replaced, or (for `in-progress`) the attempt is over or a newer snapshot is held.
   * @throws {StoreFullError} when the store holds `maxResults` results.
   * @throws {StoreLimitError} when the result would pass the bound on nodes, images or instances.
   */
  add(result: MetricsResult): "added" | "duplicate" {
    const shared = this.#share(result);
    if (shared.outcome === "in-progress") return this.#addInProgress(shared);
    // The attempt is over whether or not there is room for its result.
    this.#dropInFlight(shared.attemptId);
    if (this.#results.has(shared.attemptId)) return "duplicate";
    // Placed first: the first result of a new run makes room by folding the run it replaces.
    const place = this.#place(shared);
    if (!place || shared.startedAt < place.cell.droppedUpTo) {
      this.#staleIgnored++;
      return "duplicate";
    }
    if (this.#results.size >= this.#maxResults) {
      this.#refusedFull++;
      throw new StoreFullError(this.#maxResults);
    }
    this.#results.set(shared.attemptId, shared);
    this.#version++;
    this.#aggregate(shared as MetricsResult & { outcome: AttemptOutcome }, place);
    return "added";
  }

  /** The latest `in-progress` results, one per attempt downloading now, least recent first. */
  *inProgress(): IterableIterator<MetricsResult> {
    this.#expire();
    for (const entry of this.#inFlight.values()) yield entry.result;
  }

  /** Every result held (the current runs'), in the order they arrived. */
  results(): IterableIterator<MetricsResult> {
    return this.#results.values();
  }

  /** Per-image counters over every run, by image. */
  imageCounters(): ReadonlyMap<string, ImageCounters> {
    return this.#images;
  }

  /** Where `image` stands on `node` in the node's current run. */
  cellState(node: string, image: string): CellState {
    this.#expire();
    const state = this.#nodes.get(node);
    const cell = state?.cells.get(image);
    return cell && isCurrent(state!, cell) ? cellStateOf(cell) : "pending";
  }

  /** The journal records that rebuild this store: the held results, then the counters. */
  journalRecords(): Iterable<JournalRecord> {
    return snapshotRecords(this.#nodes, this.#images, this.#results.values());
  }

  /**
   * Applies one record read back from the journal: a result (added as by {@linkcode add}) or
   * counters written by a compaction (see `store_snapshot.ts`).
   *
   * @throws {StoreFullError | StoreLimitError} as {@linkcode add} does.
   */
  restore(record: JournalRecord): void {
    if ("attemptId" in record) {
      this.add(record);
      return;
    }
    restoreRecord(record, {
      image: (name) => this.#imageState(this.intern(name)),
      node: (name) => this.#nodeState(this.intern(name)),
      cell: (node, image) => this.#earlierCell(node, image),
      intern: (text) => this.intern(text),
    });
    this.#version++;
  }

  /** Aggregates the current runs into the `/summary` document (cached until the next add). */
  summary(options: SummaryOptions = {}): MetricsSummary {
    this.#expire();
    // Cached per set of options (a summary asked with other limits is computed anew), and for
    // at most a second, as nodes turn gone with time alone.
    const key = JSON.stringify([
      options.grid ?? false,
      options.slowest,
      options.errorNodes,
      options.downloading,
      options.errors,
    ]);
    const cached = this.#cached;
    const at = this.#clock.now();
    if (
      cached && cached.version === this.#version && cached.options === key && at - cached.at < 1000
    ) return cached.summary;
    const summary = summarize({
      nodes: this.#nodes,
      images: this.#images,
      results: this.#results.size,
      maxResults: this.#maxResults,
      refusedFull: this.#refusedFull,
      staleIgnored: this.#staleIgnored,
      runsCompacted: this.runsCompacted,
      goneAfterMs: this.#goneAfterMs,
      now: () => this.#clock.now(),
      wallNow: () => this.#clock.wallNow(),
    }, options);
    this.#cached = { version: this.#version, options: key, at, summary };
    return summary;
  }

  /** Replaces the result's strings by shared equal ones, in place (they are equal). */
  #share(result: MetricsResult): MetricsResult {
    result.node = this.intern(result.node);
    result.image = this.intern(result.image);
    if (result.instance) result.instance = this.intern(result.instance);
    if (result.imageRef) result.imageRef = this.intern(result.imageRef);
    if (result.error) result.error = this.intern(result.error);
    return result;
  }

  #addInProgress(result: MetricsResult): "added" | "duplicate" {
    if (this.#results.has(result.attemptId)) return "duplicate";
    const known = this.#inFlight.get(result.attemptId);
    if (known && result.durationMs < known.result.durationMs) return "duplicate";
    const place = this.#place(result);
    if (!place) return "duplicate";
    const { cell } = place;
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

  /**
   * Finds (making them known) the node, run, cell and image of a result; replaces the node's
   * current run when the result starts a new one. Undefined for a result of a replaced run.
   */
  #place(result: MetricsResult): Place | undefined {
    const node = this.#nodeState(result.node);
    node.lastSeen = this.#clock.now();
    const decision = decideRun(node, result);
    if (decision.kind === "stale") return undefined;
    const run = decision.run;
    if (decision.kind === "new") {
      if (decision.replaces) this.#retire(node, decision.replaces);
      else if (node.runs.size >= MAX_INSTANCES_PER_NODE) {
        throw new StoreLimitError(
          "instances",
          `node ${node.name} already reports for ${MAX_INSTANCES_PER_NODE} prefetcher instances; ` +
            "results of another instance on it are refused",
        );
      }
      node.runs.set(run.instance, run);
      this.#version++;
    }
    noteInRun(run, result);
    // The run's own string, shared by its results without the bounded table of shared strings.
    if (result.runId) result.runId = run.id;
    node.lastStartedAt = Math.max(node.lastStartedAt, result.startedAt);
    const image = this.#imageState(result.image);
    return { node, cell: this.#cellOf(node, run, result.image, image), image };
  }

  #nodeState(name: string): NodeState {
    let node = this.#nodes.get(name);
    if (node) return node;
    if (this.#nodes.size >= this.#maxNodes) this.#forgetGoneNode();
    node = {
      name,
      cells: new Map(),
      runs: new Map(),
      retired: [],
      lastSeen: this.#clock.now(),
      lastStartedAt: 0,
      history: emptyHistory(),
    };
    this.#nodes.set(name, node);
    return node;
  }

  /** Makes room for a node by forgetting the one heard from longest ago, if it is gone. */
  #forgetGoneNode(): void {
    let oldest: NodeState | undefined;
    for (const node of this.#nodes.values()) {
      if (!oldest || node.lastSeen < oldest.lastSeen) oldest = node;
    }
    if (!oldest || this.#clock.now() - oldest.lastSeen < this.#goneAfterMs) {
      throw new StoreLimitError(
        "nodes",
        `the server already tracks ${this.#maxNodes} nodes, its --max-nodes, and none has been ` +
          "silent long enough to be forgotten; results of new nodes are refused until one is " +
          "(or restart it with a higher --max-nodes)",
      );
    }
    for (const cell of oldest.cells.values()) this.#deleteCell(oldest, cell);
    this.#nodes.delete(oldest.name);
    this.#version++;
  }

  #imageState(name: string): ImageState {
    let image = this.#images.get(name);
    if (image) return image;
    if (this.#images.size >= this.#maxImages) this.#forgetUnusedImage();
    image = {
      attempts: { pulled: 0, present: 0, "attempt-failed": 0, failed: 0 },
      durationBuckets: new Array(DURATION_BUCKETS_SECONDS.length + 1).fill(0),
      durationSumSeconds: 0,
      bytesPulled: 0,
      size: 0,
      cells: 0,
    };
    this.#images.set(name, image);
    return image;
  }

  /** Makes room for an image by forgetting one that no node refers to any more. */
  #forgetUnusedImage(): void {
    for (const [name, image] of this.#images) {
      if (image.cells === 0) {
        this.#images.delete(name);
        return;
      }
    }
    throw new StoreLimitError(
      "images",
      `the server already tracks ${this.#maxImages} distinct images, its --max-images, all ` +
        "still listed by some node; results of other images are refused (shorten the image " +
        "lists or restart it with a higher --max-images)",
    );
  }

  /** The node's cell of `image` in `run`; a cell of an earlier run moves to `run`. */
  #cellOf(node: NodeState, run: NodeRun, name: string, image: ImageState): Cell {
    let cell = node.cells.get(name);
    if (!cell) {
      if (node.cells.size >= MAX_IMAGES_PER_NODE) {
        throw new StoreLimitError(
          "images-per-node",
          `node ${node.name} already reported ${MAX_IMAGES_PER_NODE} distinct images; results ` +
            "of more images from it are refused (split the image list across instances)",
        );
      }
      cell = {
        image: name,
        run,
        held: undefined,
        failedAttempts: 0,
        lastFinishedStartedAt: 0,
        droppedUpTo: 0,
      };
      node.cells.set(name, cell);
      image.cells++;
    } else if (cell.run !== run) {
      this.#closeCell(node, cell);
      cell.run = run;
    }
    return cell;
  }

  /** A cell with only an earlier run's outcome, for a restored snapshot. */
  #earlierCell(node: NodeState, name: string): Cell {
    const image = this.#imageState(name);
    const placeholder: NodeRun = {
      id: "",
      instance: "",
      firstStartedAt: 0,
      lastStartedAt: 0,
      imagesTotal: 0,
    };
    return this.#cellOf(node, node.cells.get(name)?.run ?? placeholder, name, image);
  }

  /**
   * Replaces `old`, the current run of its instance on `node`: its cells keep only how it ended
   * for them, their results become counts; cells of runs before it are forgotten.
   */
  #retire(node: NodeState, old: NodeRun): void {
    for (const cell of node.cells.values()) {
      if (cell.run === old) this.#closeCell(node, cell);
      else if (!isCurrent(node, cell)) this.#deleteCell(node, cell);
    }
    node.runs.delete(old.instance);
    retireRunId(node, old);
    node.history.runs++;
  }

  /** Ends a cell's run: its outcome becomes the cell's earlier state, its results counts. */
  #closeCell(node: NodeState, cell: Cell): void {
    if (cell.final) {
      cell.earlier = {
        outcome: cell.final.outcome as "pulled" | "present" | "failed",
        finishedAt: cell.final.startedAt + Math.round(cell.final.durationMs / 1000),
      };
    }
    for (const result of heldResults(cell)) this.#fold(node, result);
    cell.held = undefined;
    cell.final = undefined;
    cell.failedAttempts = 0;
    cell.lastFinishedStartedAt = 0;
    cell.droppedUpTo = 0;
    if (cell.inFlight) this.#dropInFlight(cell.inFlight.result.attemptId);
  }

  #deleteCell(node: NodeState, cell: Cell): void {
    this.#closeCell(node, cell);
    node.cells.delete(cell.image);
    const image = this.#images.get(cell.image);
    if (image) image.cells--;
  }

  /** Drops a held result, keeping it in its node's history counts. */
  #fold(node: NodeState, result: MetricsResult): void {
    this.#results.delete(result.attemptId);
    const { history } = node;
    history.attempts++;
    if (result.outcome === "attempt-failed" || result.outcome === "failed") {
      history.failedAttempts++;
    }
    if (result.outcome === "pulled") {
      history.pulled++;
      history.bytesPulled += result.sizeBytes ?? 0;
      history.pullMs += result.durationMs;
    }
    this.#version++;
  }

  #aggregate(result: MetricsResult & { outcome: AttemptOutcome }, place: Place): void {
    const { node, cell, image } = place;
    countAttempt(image, result);
    this.#hold(node, cell, result);
    cell.lastFinishedStartedAt = Math.max(cell.lastFinishedStartedAt, result.startedAt);
    // A finished attempt that started later ends any attempt before it.
    const earlier = cell.inFlight;
    if (earlier && earlier.result.startedAt < result.startedAt) {
      this.#dropInFlight(earlier.result.attemptId);
    }
    if (result.outcome === "attempt-failed" || result.outcome === "failed") cell.failedAttempts++;
    if (isFinal(result.outcome) && decides(result, cell.final)) cell.final = result;
  }

  /** Holds a result in its cell; past the cell's bound the oldest becomes counts. */
  #hold(node: NodeState, cell: Cell, result: MetricsResult): void {
    // Most cells hold one result: no array for it.
    const held = cell.held;
    if (held === undefined) cell.held = result;
    else if (!Array.isArray(held)) cell.held = [held, result];
    else {
      held.push(result);
      if (held.length > MAX_HELD_PER_CELL) {
        const dropped = held.shift()!;
        cell.droppedUpTo = Math.max(cell.droppedUpTo, dropped.startedAt);
        this.#fold(node, dropped);
      }
    }
  }
}

/** Adds an attempt to its image's counters (kept over every run, for Prometheus). */
function countAttempt(image: ImageState, result: MetricsResult & { outcome: AttemptOutcome }) {
  image.attempts[result.outcome]++;
  image.size = Math.max(image.size, result.sizeBytes ?? 0);
  if (result.outcome !== "pulled") return;
  const seconds = result.durationMs / 1000;
  let bucket = DURATION_BUCKETS_SECONDS.findIndex((bound) => seconds <= bound);
  if (bucket < 0) bucket = DURATION_BUCKETS_SECONDS.length;
  image.durationBuckets[bucket]++;
  image.durationSumSeconds += seconds;
  image.bytesPulled += result.sizeBytes ?? 0;
}

/**
 * Whether a final result replaces the current one: the later attempt wins (a long-lived client
 * pulls again in the same run); at the same second, having the image wins over failing.
 */
function decides(candidate: MetricsResult, current: MetricsResult | undefined): boolean {
  if (!current) return true;
  if (candidate.startedAt !== current.startedAt) return candidate.startedAt > current.startedAt;
  return current.outcome === "failed" && candidate.outcome !== "failed";
}
