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
import { type Clock, systemClock } from "../../core/clock.ts";

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
   * This run's id, sent on every result so the server tells runs apart (see `run_id` in
   * `proto/metrics.proto`); one per call to `metricsReporter` unless given.
   * @default {crypto.randomUUID()}
   */
  runId?: string;
  /**
   * Makes ids for the results that are not attempts (`present`, and `failed` without an attempt).
   * @default {crypto.randomUUID}
   */
  newAttemptId?: () => string;
  /**
   * Durations (monotonic `now`) and the time of day results carry (`wallNow`).
   * @default {systemClock}
   */
  clock?: Pick<Clock, "now" | "wallNow">;
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
  const results = new EventResults(options);
  return (event) => {
    switch (event.type) {
      case "present":
        return results.present(event);
      case "attempt-started":
        return results.attemptStarted(event);
      case "progress":
        return results.progress(event);
      case "attempt-finished":
        return results.attemptFinished(event);
      case "retry-scheduled":
        return results.retryScheduled(event);
      case "image-done":
        return results.imageDone(event);
    }
  };
}

/** The pull event of one `type`. */
type EventOf<T extends PullEvent["type"]> = Extract<PullEvent, { type: T }>;

/** Makes the results of one run's events, one method per event type. */
class EventResults {
  readonly #options: MetricsReporterOptions;
  readonly #newId: () => string;
  readonly #clock: Pick<Clock, "now" | "wallNow">;
  /** What every result of the run carries. */
  readonly #base: Pick<MetricsResult, "node" | "instance" | "imagesTotal" | "runId">;
  /** A failed attempt's result, by image, until the image's next event says if it was final. */
  readonly #held = new Map<string, MetricsResult>();
  /** When each running attempt started, by attempt id: monotonic, and since the epoch. */
  readonly #running = new Map<string, { at: number; wallAt: number }>();

  constructor(options: MetricsReporterOptions) {
    this.#options = options;
    this.#newId = options.newAttemptId ?? (() => crypto.randomUUID());
    this.#clock = options.clock ?? systemClock;
    this.#base = {
      node: options.node,
      instance: options.instance,
      imagesTotal: options.imagesTotal,
      runId: options.runId ?? crypto.randomUUID(),
    };
  }

  /** Now, on both clocks. */
  #started(): { at: number; wallAt: number } {
    return { at: this.#clock.now(), wallAt: this.#clock.wallNow() };
  }

  /** The image was on the node already: a `present` result, not an attempt. */
  present(event: EventOf<"present">): void {
    this.#options.submit({
      ...this.#base,
      attemptId: this.#newId(),
      startedAt: Math.floor(this.#clock.wallNow() / 1000),
      image: event.image,
      outcome: "present",
      attempt: 0,
      durationMs: 0,
      sizeBytes: event.sizeBytes,
    });
  }

  /** Notes when the attempt started, for its snapshots. */
  attemptStarted(event: EventOf<"attempt-started">): void {
    this.#running.set(event.attemptId, this.#started());
  }

  /** A snapshot of the attempt downloading: an `in-progress` result under the attempt's id. */
  progress(event: EventOf<"progress">): void {
    const started = this.#running.get(event.attemptId) ?? this.#started();
    const { progress } = event;
    this.#options.submit({
      ...this.#base,
      attemptId: event.attemptId,
      startedAt: Math.floor(started.wallAt / 1000),
      image: event.image,
      outcome: "in-progress",
      attempt: event.attempt,
      durationMs: Math.max(0, this.#clock.now() - started.at),
      bytesReceived: progress.receivedBytes,
      throughputBytesPerSecond: Math.round(progress.bytesPerSecond),
      totalBytes: progress.totalBytes,
      storedBytes: progress.storedBytes,
    });
  }

  /** A pulled attempt is submitted; a failed one is held until the image's next event. */
  attemptFinished(event: EventOf<"attempt-finished">): void {
    this.#running.delete(event.attemptId);
    const result: MetricsResult = {
      ...this.#base,
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
    if (event.error === undefined) this.#options.submit(result);
    else this.#held.set(event.image, result);
  }

  /** Another attempt comes: the held failure was not final. */
  retryScheduled(event: EventOf<"retry-scheduled">): void {
    const failed = this.#held.get(event.image);
    this.#held.delete(event.image);
    if (failed) this.#options.submit(failed);
  }

  /**
   * The image is done: a held failure is final if the image failed; an image that failed with
   * no failure held (between or before attempts) gets a `failed` result of its own.
   */
  imageDone(event: EventOf<"image-done">): void {
    const { result } = event;
    const failed = this.#held.get(result.image);
    this.#held.delete(result.image);
    if (failed) {
      this.#options.submit({
        ...failed,
        outcome: result.status === "failed" ? "failed" : failed.outcome,
      });
    } else if (result.status === "failed") {
      this.#options.submit({
        ...this.#base,
        attemptId: this.#newId(),
        startedAt: Math.floor(this.#clock.wallNow() / 1000),
        image: result.image,
        outcome: "failed",
        attempt: 0,
        durationMs: 0,
        error: result.error,
      });
    }
  }
}
