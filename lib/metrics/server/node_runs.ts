/**
 * What a "run" is to the server, and which run a result belongs to.
 *
 * A run is one `fetch` run (or one pass of a long-lived client) of one prefetcher instance on one
 * node: every result of it carries the same `run_id`, which the client makes once per run. The
 * original tool's clients send no `run_id`; for them a run is derived: the results of a node and
 * instance belong to one run while each starts within {@linkcode LEGACY_RUN_GAP_SECONDS} of the
 * latest one before it (longer than a run's default overall timeout, so a restart loop that
 * pulls again soon after counts as one run, whose cells take the latest result anyway).
 *
 * A node has one current run per instance. A result of a new run whose attempt started no
 * earlier than the current run's first one replaces it: the old run's results are dropped
 * (folded into counters) and its id remembered, so its late re-sends are ignored as stale. A
 * result of an unknown run that started before the current run began is stale too.
 *
 * @module
 */
import type { MetricsResult } from "../protocol.ts";
import type { NodeRun, NodeState } from "./aggregates.ts";

/** The longest pause between two results of one derived run (clients without `run_id`). */
export const LEGACY_RUN_GAP_SECONDS = 1800;

/** How many replaced run ids a node remembers to recognise their late re-sends. */
export const MAX_RETIRED_RUNS = 16;

/** Which run a result belongs to. */
export type RunDecision =
  | { kind: "current"; run: NodeRun }
  | { kind: "new"; run: NodeRun; replaces?: NodeRun }
  | { kind: "stale" };

/**
 * Decides which run of `node` the finished or in-progress `result` belongs to, without changing
 * anything: its instance's current run, a new run (replacing the current one, if any), or none
 * (a re-send of a replaced run, or a result older than the current run).
 */
export function decideRun(node: NodeState, result: MetricsResult): RunDecision {
  const instance = result.instance ?? "";
  const current = node.runs.get(instance);
  const id = result.runId || legacyRunId(current, result.startedAt);
  if (current?.id === id) return { kind: "current", run: current };
  if (node.retired.includes(id)) return { kind: "stale" };
  if (current && result.startedAt < current.firstStartedAt) return { kind: "stale" };
  const run: NodeRun = {
    id,
    instance,
    firstStartedAt: result.startedAt,
    lastStartedAt: result.startedAt,
    imagesTotal: 0,
  };
  return current ? { kind: "new", run, replaces: current } : { kind: "new", run };
}

/** Notes a result in its run: its start time and the run's image count. */
export function noteInRun(run: NodeRun, result: MetricsResult): void {
  run.firstStartedAt = Math.min(run.firstStartedAt, result.startedAt);
  run.lastStartedAt = Math.max(run.lastStartedAt, result.startedAt);
  if (result.imagesTotal) run.imagesTotal = result.imagesTotal;
}

/** Remembers that `run` was replaced, forgetting the oldest id past the bound. */
export function retireRunId(node: NodeState, run: NodeRun): void {
  node.retired.push(run.id);
  if (node.retired.length > MAX_RETIRED_RUNS) node.retired.shift();
}

/** The derived run id of a result without one, given the instance's current run. */
function legacyRunId(current: NodeRun | undefined, startedAt: number): string {
  if (
    current?.id.startsWith("legacy@") &&
    startedAt <= current.lastStartedAt + LEGACY_RUN_GAP_SECONDS
  ) return current.id;
  return `legacy@${startedAt}`;
}
