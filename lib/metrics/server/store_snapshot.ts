/**
 * The store as journal records, for compacting the journal: the results held (the current runs)
 * and then, as absolute values, what older runs left behind: each image's counters and each
 * node's history, replaced run ids and earlier outcomes. Replaying the records in order rebuilds
 * the store: the results recreate the current runs (and count in the image counters), then the
 * counters records overwrite those counters with the totals of every run.
 *
 * @module
 */
import { type MetricsResult, OUTCOMES } from "../protocol.ts";
import {
  type Cell,
  DURATION_BUCKETS_SECONDS,
  type EarlierState,
  type ImageState,
  type NodeState,
  type RunHistory,
} from "./aggregates.ts";
import { MAX_RETIRED_RUNS } from "./node_runs.ts";

/** An image's counters over every run, as of a compaction. */
export interface ImageRecord {
  /** Tells the record from a result. */
  kind: "image";
  /** The image. */
  image: string;
  /** Attempts by outcome (see `ImageCounters`). */
  attempts: Record<string, number>;
  /** The pull-duration histogram, count per bucket, +Inf last. */
  durationBuckets: number[];
  /** Sum of the pulls' durations, in seconds. */
  durationSumSeconds: number;
  /** Bytes pulled. */
  bytesPulled: number;
  /** The largest size a node reported. */
  size: number;
}

/** What a node's replaced runs left behind, as of a compaction. */
export interface NodeRecord {
  /** Tells the record from a result. */
  kind: "node";
  /** The node. */
  node: string;
  /** Its replaced runs as counts. */
  history: RunHistory;
  /** Ids of its replaced runs, newest last. */
  retired: string[];
  /** Per image, how the run before the cell's current one ended: image, outcome, finished at. */
  earlier: [string, EarlierState["outcome"], number][];
}

/** One line of the journal: a result, or a record written by a compaction. */
export type JournalRecord = MetricsResult | ImageRecord | NodeRecord;

/** What {@linkcode restoreRecord} may touch in the store. */
export interface RestoreAccess {
  /** The image's state, made known if needed. */
  image(name: string): ImageState;
  /** The node's state, made known if needed. */
  node(name: string): NodeState;
  /** The node's cell of an image, made known (outside any current run) if needed. */
  cell(node: NodeState, image: string): Cell;
  /** Shares equal strings. */
  intern(text: string): string;
}

/** The records that rebuild a store: the held results first, then every image and node. */
export function* snapshotRecords(
  nodes: ReadonlyMap<string, NodeState>,
  images: ReadonlyMap<string, ImageState>,
  results: Iterable<MetricsResult>,
): Generator<JournalRecord> {
  yield* results;
  for (const [image, state] of images) {
    yield {
      kind: "image",
      image,
      attempts: { ...state.attempts },
      durationBuckets: state.durationBuckets,
      durationSumSeconds: state.durationSumSeconds,
      bytesPulled: state.bytesPulled,
      size: state.size,
    };
  }
  for (const node of nodes.values()) {
    const earlier: NodeRecord["earlier"] = [];
    for (const cell of node.cells.values()) {
      if (cell.earlier) earlier.push([cell.image, cell.earlier.outcome, cell.earlier.finishedAt]);
    }
    if (node.history.runs === 0 && earlier.length === 0) continue;
    yield { kind: "node", node: node.name, history: node.history, retired: node.retired, earlier };
  }
}

/** Applies a compaction's record (an image's or node's) to the store. */
export function restoreRecord(record: ImageRecord | NodeRecord, access: RestoreAccess): void {
  if (record.kind === "image") {
    const image = access.image(record.image);
    for (const outcome of OUTCOMES) image.attempts[outcome] = count(record.attempts?.[outcome]);
    const buckets = Array.isArray(record.durationBuckets) ? record.durationBuckets : [];
    image.durationBuckets = Array.from(
      { length: DURATION_BUCKETS_SECONDS.length + 1 },
      (_, index) => count(buckets[index]),
    );
    image.durationSumSeconds = count(record.durationSumSeconds);
    image.bytesPulled = count(record.bytesPulled);
    image.size = Math.max(image.size, count(record.size));
    return;
  }
  const node = access.node(record.node);
  const history = record.history ?? {};
  for (const key of Object.keys(node.history) as (keyof RunHistory)[]) {
    node.history[key] = count(history[key]);
  }
  node.retired = (Array.isArray(record.retired) ? record.retired : [])
    .filter((id) => typeof id === "string").slice(-MAX_RETIRED_RUNS).map(access.intern);
  for (const entry of Array.isArray(record.earlier) ? record.earlier : []) {
    const [image, outcome, finishedAt] = entry;
    if (typeof image !== "string" || !["pulled", "present", "failed"].includes(outcome)) continue;
    access.cell(node, image).earlier = { outcome, finishedAt: count(finishedAt) };
  }
}

/** Whether a parsed journal line is a compaction's record (not a result). */
export function isCompactionRecord(value: unknown): value is ImageRecord | NodeRecord {
  const record = value as { kind?: unknown; image?: unknown; node?: unknown } | null;
  return (record?.kind === "image" && typeof record.image === "string") ||
    (record?.kind === "node" && typeof record.node === "string");
}

function count(value: unknown): number {
  return typeof value === "number" && Number.isFinite(value) && value >= 0 ? value : 0;
}
