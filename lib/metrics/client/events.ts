/**
 * Turns the pull scheduler's events into metrics results, with the right outcome: a failed
 * attempt is only known to be final (`failed`) or not (`attempt-failed`) once the scheduler says
 * what comes next, so it is held until the image's next event. While an attempt downloads, each
 * `progress` event becomes an `in-progress` snapshot under the attempt's own id, which the
 * attempt's finished result then supersedes.
 *
 * @module
 */
import type { MetricsResult } from "../protocol.ts";
import type { PullEvent } from "../../pull/scheduler.ts";

/** Options for {@linkcode metricsReporter}. */
export interface MetricsReporterOptions {
  /** The node, sent on every result. */
  node: string;
  /** How many distinct images the run has. */
  imagesTotal: number;
  /** Receives each result (e.g. `MetricsSubmitter.submit`). */
  submit: (result: MetricsResult) => void;
  /** The prefetcher instance, when known. */
  instance?: string;
  /**
   * Makes ids for the results that are not attempts (`present`, and `failed` without an attempt).
   * @default {crypto.randomUUID}
   */
  newAttemptId?: () => string;
  /**
   * The current time in milliseconds since the epoch.
   * @default {Date.now}
   */
  now?: () => number;
}

/**
 * Returns an `onEvent` handler for `pullImages` that submits one result per attempt, plus one
 * `present` result per image already on the node and one `failed` result without an attempt of
 * its own when an image ends failed between or before attempts (the run was interrupted). Each
 * `progress` event (they come every `progressEventIntervalMs` while an image downloads) is
 * submitted as an `in-progress` result with the attempt's id, its bytes, rate and total.
 *
 * @example
 * ```ts ignore
 * const report = metricsReporter({ node, imagesTotal: targets.length, submit: (r) => submitter.submit(r) });
 * await pullImages(targets, { ...options, onEvent: (event) => { log(event); report(event); } });
 * ```
 */
export function metricsReporter(options: MetricsReporterOptions): (event: PullEvent) => void {
  const newId = options.newAttemptId ?? (() => crypto.randomUUID());
  const now = options.now ?? Date.now;
  const held = new Map<string, MetricsResult>();
  /** When each running attempt started, by attempt id, in milliseconds since the epoch. */
  const running = new Map<string, number>();
  const base = { node: options.node, instance: options.instance, imagesTotal: options.imagesTotal };
  return (event) => {
    switch (event.type) {
      case "present":
        options.submit({
          ...base,
          attemptId: newId(),
          startedAt: Math.floor(now() / 1000),
          image: event.image,
          outcome: "present",
          attempt: 0,
          durationMs: 0,
          sizeBytes: event.sizeBytes,
        });
        break;
      case "attempt-started":
        running.set(event.attemptId, now());
        break;
      case "progress": {
        const startedAt = running.get(event.attemptId) ?? now();
        const { progress } = event;
        options.submit({
          ...base,
          attemptId: event.attemptId,
          startedAt: Math.floor(startedAt / 1000),
          image: event.image,
          outcome: "in-progress",
          attempt: event.attempt,
          durationMs: Math.max(0, now() - startedAt),
          bytesReceived: progress.receivedBytes,
          throughputBytesPerSecond: Math.round(progress.bytesPerSecond),
          totalBytes: progress.totalBytes,
          storedBytes: progress.storedBytes,
        });
        break;
      }
      case "attempt-finished": {
        running.delete(event.attemptId);
        const result: MetricsResult = {
          ...base,
          attemptId: event.attemptId,
          startedAt: Math.floor(event.startedAt / 1000),
          image: event.image,
          outcome: event.error === undefined ? "pulled" : "attempt-failed",
          attempt: event.attempt,
          durationMs: event.durationMs,
          error: event.error,
          sizeBytes: event.sizeBytes,
          bytesReceived: event.receivedBytes,
          throughputBytesPerSecond: event.bytesPerSecond,
        };
        if (event.error === undefined) options.submit(result);
        else held.set(event.image, result);
        break;
      }
      case "retry-scheduled": {
        const failed = held.get(event.image);
        held.delete(event.image);
        if (failed) options.submit(failed);
        break;
      }
      case "image-done": {
        const { result } = event;
        const failed = held.get(result.image);
        held.delete(result.image);
        if (failed) {
          options.submit({
            ...failed,
            outcome: result.status === "failed" ? "failed" : failed.outcome,
          });
        } else if (result.status === "failed") {
          options.submit({
            ...base,
            attemptId: newId(),
            startedAt: Math.floor(now() / 1000),
            image: result.image,
            outcome: "failed",
            attempt: 0,
            durationMs: 0,
            error: result.error,
          });
        }
        break;
      }
    }
  };
}
