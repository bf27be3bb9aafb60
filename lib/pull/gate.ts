/**
 * How a `fetch` run opens the {@linkcode PullGate} its scheduler asks before each pull, declared
 * here so that `pull/` never depends on who implements it (cluster-wide waves do, in
 * `lib/waves/client/node_waves.ts`, wired in by `cmd/fetch.ts`).
 *
 * @module
 */
import type { PullGate } from "./scheduler.ts";

/** An open gate: given to the scheduler, flushed at the end of the run, closed when disposed. */
export interface OpenedPullGate extends Disposable {
  /** What the scheduler asks. */
  gate: PullGate;
  /**
   * Tells the gate's peer what is still unsaid, for up to `timeoutMs`; past `patienceMs`
   * (default: `timeoutMs`), only while a call carrying it waits for its answer.
   */
  flush(timeoutMs: number, patienceMs?: number): Promise<void>;
}

/**
 * How long a run tells its gate's peer what is still unsaid once the pulls are over: up to
 * `patienceMs`, and up to `timeoutMs` while a call is in flight (a call's own deadline is 5 s).
 */
export const GATE_FLUSH = { patienceMs: 2_000, timeoutMs: 7_000 } as const;

/** What a run knows when it opens its gate. */
export interface GateRun {
  /** The runtime's progress cannot be watched: every admitted image must renew its lease. */
  renewWithoutProgress: boolean;
}

/** Opens the gate of one run, once the run knows whether progress can be watched. */
export type OpenPullGate = (run: GateRun) => OpenedPullGate;
