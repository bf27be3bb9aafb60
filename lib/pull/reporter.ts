/**
 * Where a `fetch` run sends its pull events besides the log: the interface the run consumes,
 * declared here so that `pull/` never depends on who implements it (the metrics client does, in
 * `lib/metrics/client/reporter.ts`).
 *
 * @module
 */
import type { PullEvent } from "./scheduler.ts";

/** What became of the reported attempts (snapshots of attempts in progress are not counted). */
export interface DeliveryReport {
  /** Attempts the receiver acknowledged. */
  delivered: number;
  /** Attempts not acknowledged: still buffered, dropped or rejected. */
  undelivered: number;
  /** Of the undelivered, attempts dropped because the buffer was full. */
  dropped: number;
  /** Of the undelivered, attempts the receiver refused as invalid. */
  rejected: number;
}

/** Receives every event of one run, and says at the end what reached its destination. */
export interface PullReporter {
  /** Where the events go, for the summary and the logs (e.g. the metrics server's `host:port`). */
  readonly endpoint: string;
  /** Takes one event; never blocks, never throws. */
  report(event: PullEvent): void;
  /** Delivers what is still buffered for up to `timeoutMs` or until `signal` aborts, then closes. */
  flush(timeoutMs: number, signal?: AbortSignal): Promise<DeliveryReport>;
}

/** What a run knows when it opens its reporter. */
export interface ReporterRun {
  /** How many distinct images the run has. */
  imagesTotal: number;
}

/** Opens the reporter of one run once its image list is read. */
export type OpenPullReporter = (run: ReporterRun) => PullReporter;
