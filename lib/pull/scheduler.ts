/**
 * Pulls a set of images through a container runtime: in parallel (optionally bounded), each with
 * growing attempt timeouts and growing, jittered delays between attempts, all bounded by one
 * overall deadline, and every wait cancellable.
 *
 * The scheduler knows nothing about flags, logs or gRPC: the runtime, the clock and the event
 * sink come in as options.
 *
 * @module
 */
import type { CriAuth, CriImage, PullOptions } from "../runtime/cri_client.ts";
import { CriError, pullRefusal } from "../runtime/cri_error.ts";
import { type Clock, systemClock } from "../core/clock.ts";
import {
  attemptTimeoutMs,
  retryDelayMs,
  type RetryScheduleOptions,
} from "../core/retry_schedule.ts";
import { Semaphore } from "../core/semaphore.ts";
import { formatDuration } from "../core/duration.ts";
import type { AttemptProgress, ProgressMonitor } from "./progress_monitor.ts";
import { lookUpStoredImage } from "./stored_image.ts";
import { isRateLimited } from "../runtime/rate_limit.ts";

/** The part of a CRI client the scheduler uses. */
export interface ImageRuntime {
  /** Returns the image when the node has it. */
  imageStatus(image: string, options?: { signal?: AbortSignal }): Promise<CriImage | undefined>;
  /** Pulls the image and returns the reference the runtime stored it under. */
  pullImage(image: string, options?: PullOptions): Promise<string>;
}

/**
 * Asked before each attempt and told how it went: cluster-wide waves (`lib/waves/client/`). The
 * scheduler waits for {@linkcode PullGate.admit} before it takes a parallel slot, so an image
 * that waits never keeps another from being pulled.
 */
export interface PullGate {
  /** Resolves when the image may be pulled; rejects when `signal` aborts. */
  admit(image: string, signal: AbortSignal): Promise<void>;
  /** The attempt starts: its slot and credentials are there (after `admit`). */
  started?(image: string): void;
  /** The attempt received bytes. */
  progressed(image: string): void;
  /** The image is on the node. */
  landed(image: string, options: { pulled: boolean }): void;
  /**
   * The attempt failed; `rateLimited` when the registry answered 429, `permanent` when retrying
   * cannot help (not found, denied).
   */
  failed(image: string, options: { rateLimited: boolean; permanent?: boolean }): void;
}

/** When an image that is already on the node is pulled again, as Kubernetes' `imagePullPolicy`. */
export type PullPolicy = "Always" | "IfNotPresent";

/** One image to pull. */
export interface PullTarget {
  /** The normalised image reference, e.g. `docker.io/library/debian:12`. */
  image: string;
  /** True when the reference has a digest or a tag other than `latest`. */
  pinned: boolean;
  /** Credentials to try in turn; empty for an anonymous pull. */
  credentials: CriAuth[];
  /**
   * More credentials, tried after `credentials`, looked up before each attempt (so only when
   * the image is pulled, and never stale): the credential provider plugins' answers. With
   * `renew`, after the registry refused them, cached answers are not reused: the plugins are
   * asked again.
   */
  lookupCredentials?: (signal: AbortSignal, options?: { renew?: boolean }) => Promise<CriAuth[]>;
}

/** How one image ended. */
export type ImageStatus = "pulled" | "present" | "failed";

/** Why an image failed, when it did. */
export type FailureKind =
  /** The registry or runtime answered in a way retrying cannot fix (unknown image, no access). */
  | "permanent"
  /** Every attempt failed until the overall timeout ran out. */
  | "overall-timeout"
  /** The run was interrupted (SIGTERM, SIGINT). */
  | "interrupted";

/** The result for one image. */
export interface ImageResult {
  /** The normalised image reference. */
  image: string;
  /** How it ended. */
  status: ImageStatus;
  /** How many pull attempts were made (0 when it was already present). */
  attempts: number;
  /** From the start of the run until this image was done, in milliseconds. */
  elapsedMs: number;
  /** The image size the runtime reports, when it has the image. */
  sizeBytes?: number;
  /** The image reference the runtime stored, when it has the image. */
  imageRef?: string;
  /** The last error, for a failed image. */
  error?: string;
  /** Why it failed, for a failed image. */
  failure?: FailureKind;
}

/** Something that happened during the run, for logs and metrics. */
export type PullEvent =
  | { type: "present"; image: string; elapsedMs: number; sizeBytes: number }
  | {
    type: "attempt-started";
    image: string;
    attempt: number;
    /** The attempt's identifier, the same in its `progress` and `attempt-finished` events. */
    attemptId: string;
    timeoutMs: number;
    elapsedMs: number;
  }
  | {
    type: "attempt-finished";
    image: string;
    attempt: number;
    attemptId: string;
    /** When the attempt started, in milliseconds since the Unix epoch. */
    startedAt: number;
    /** The time the attempt was allowed. */
    timeoutMs: number;
    durationMs: number;
    elapsedMs: number;
    /** Absent when the attempt succeeded. */
    error?: string;
    sizeBytes?: number;
    /** Bytes this attempt received, when progress is watched. */
    receivedBytes?: number;
    /** `receivedBytes` over the attempt's duration, when progress is watched. */
    bytesPerSecond?: number;
  }
  | {
    type: "progress";
    image: string;
    attempt: number;
    attemptId: string;
    progress: AttemptProgress;
    elapsedMs: number;
  }
  | {
    type: "retry-scheduled";
    image: string;
    attempt: number;
    delayMs: number;
    elapsedMs: number;
    /** The next attempt looks its plugin credentials up again: the registry refused them. */
    renewCredentials?: boolean;
  }
  | { type: "image-done"; result: ImageResult };

/** Options for {@linkcode pullImages}. */
export interface PullSchedulerOptions {
  /** The container runtime to pull through. */
  runtime: ImageRuntime;
  /** Attempt timeouts and delays. */
  schedule: RetryScheduleOptions;
  /** Nothing runs past this many milliseconds after the start (`startedAt`). */
  overallTimeoutMs: number;
  /**
   * When the run started, a time of `clock`: the overall timeout and every `elapsedMs` count from
   * it (a `fetch` run starts before it waits for its image list and its runtime).
   * @default {the clock's now, when pullImages is called}
   */
  startedAt?: number;
  /**
   * How many pull attempts may run at once; 0 for no bound.
   * @default {0}
   */
  maxParallel?: number;
  /**
   * Overrides the per-image default of Kubernetes: `IfNotPresent` for pinned references,
   * `Always` for `latest` ones.
   */
  pullPolicy?: PullPolicy;
  /**
   * Watches each attempt's bytes: an attempt still receiving is not cut by its timeout, and one
   * that receives nothing for the monitor's stall timeout is cut early. Without it, attempts end
   * at their wall-clock timeout.
   */
  progress?: ProgressMonitor;
  /**
   * How often a `progress` event is emitted for an attempt that is downloading, in
   * milliseconds; the first one comes after this long too, so fast pulls stay quiet.
   * @default {10_000}
   */
  progressEventIntervalMs?: number;
  /** Cluster-wide waves: asked before each attempt. */
  gate?: PullGate;
  /**
   * Without a gate, the delay after an attempt the registry rate-limited (429) is this many times
   * the usual one (still at most the schedule's longest delay).
   * @default {4}
   */
  rateLimitDelayFactor?: number;
  /** Interrupts the run: every image not yet done fails as `interrupted`. */
  signal?: AbortSignal;
  /**
   * Time and waits.
   * @default {systemClock}
   */
  clock?: Clock;
  /**
   * Random numbers in [0, 1) for jitter.
   * @default {Math.random}
   */
  random?: () => number;
  /** Receives every event as it happens. */
  onEvent?: (event: PullEvent) => void;
  /**
   * Makes a unique identifier for each attempt.
   * @default {crypto.randomUUID}
   */
  newAttemptId?: () => string;
}

/** An attempt ran out of its time. */
export class AttemptTimeoutError extends Error {
  /** Creates the error for an attempt that was allowed `timeoutMs`. */
  constructor(readonly timeoutMs: number) {
    super(`the attempt timed out after ${formatDuration(timeoutMs)}`);
    this.name = "AttemptTimeoutError";
  }
}

/** The whole run ran out of its time. */
export class OverallTimeoutError extends Error {
  /** Creates the error for a run that was allowed `timeoutMs`. */
  constructor(readonly timeoutMs: number) {
    super(`the overall timeout of ${formatDuration(timeoutMs)} was reached`);
    this.name = "OverallTimeoutError";
  }
}

/**
 * Pulls every target and returns one result per target, in the targets' order. Never throws
 * for a failed image: failures are results.
 */
export async function pullImages(
  targets: PullTarget[],
  options: PullSchedulerOptions,
): Promise<ImageResult[]> {
  const clock = options.clock ?? systemClock;
  const start = options.startedAt ?? clock.now();
  const deadline = start + options.overallTimeoutMs;
  const stop = new AbortController();
  const signals = [stop.signal, ...(options.signal ? [options.signal] : [])];
  const run: Run = {
    options,
    clock,
    start,
    deadline,
    signal: AbortSignal.any(signals),
    slots: new Semaphore(options.maxParallel ?? 0),
    random: options.random ?? Math.random,
    emit: options.onEvent ?? (() => {}),
    newAttemptId: options.newAttemptId ?? (() => crypto.randomUUID()),
  };
  clock.sleep(Math.max(0, deadline - clock.now()), stop.signal).then(
    () => stop.abort(new OverallTimeoutError(options.overallTimeoutMs)),
    () => {},
  );
  try {
    return await Promise.all(targets.map(async (target) => {
      const result = await pullOne(target, run);
      run.emit({ type: "image-done", result });
      return result;
    }));
  } finally {
    if (!stop.signal.aborted) stop.abort(new Error("the run is over"));
  }
}

interface Run {
  options: PullSchedulerOptions;
  clock: Clock;
  start: number;
  deadline: number;
  signal: AbortSignal;
  slots: Semaphore;
  random: () => number;
  emit: (event: PullEvent) => void;
  newAttemptId: () => string;
}

/**
 * What a successful attempt received, as far as it is known. The last sample came before the
 * pull completed, so the rest of the image arrived since; a pull that finished before any sample
 * saw its manifest received an unknown amount, and says nothing rather than "0 B".
 */
function progressWhenPulled(progress: AttemptProgress | undefined): AttemptProgress | undefined {
  if (progress?.totalBytes === undefined) return undefined;
  const storedBefore = progress.storedBytes - progress.receivedBytes;
  return { ...progress, receivedBytes: Math.max(0, progress.totalBytes - storedBefore) };
}

async function pullOne(target: PullTarget, run: Run): Promise<ImageResult> {
  const policy = run.options.pullPolicy ?? (target.pinned ? "IfNotPresent" : "Always");
  if (policy === "IfNotPresent") {
    const present = await presentResult(target.image, run);
    if (present) return present;
  }
  let lastError = "no attempt was made";
  let renew = false;
  for (let attempt = 1;; attempt++) {
    if (run.signal.aborted) return failed(target, attempt - 1, lastError, run);
    const outcome = await oneAttempt(target, attempt, run, renew);
    if (outcome === "stopped") return failed(target, attempt - 1, lastError, run);
    if (outcome.imageRef !== undefined) return await pulledResult(outcome, run);
    lastError = describeError(outcome.error);
    const next = afterFailedAttempt(target, outcome, lastError, run);
    if (!("delayMs" in next)) return next;
    renew = next.renewCredentials;
    run.emit({
      type: "retry-scheduled",
      image: target.image,
      attempt,
      delayMs: next.delayMs,
      elapsedMs: elapsedMs(run),
      ...(renew ? { renewCredentials: true } : {}),
    });
    await run.clock.sleep(next.delayMs, run.signal).catch(() => {});
  }
}

function elapsedMs(run: Run): number {
  return run.clock.now() - run.start;
}

/** The image's result when the node has it already (`IfNotPresent`), told to the gate. */
async function presentResult(image: string, run: Run): Promise<ImageResult | undefined> {
  const present = await findImage(image, run).catch(() => undefined);
  if (!present) return undefined;
  run.options.gate?.landed(image, { pulled: false });
  run.emit({ type: "present", image, elapsedMs: elapsedMs(run), sizeBytes: present.sizeBytes });
  return {
    image,
    status: "present",
    attempts: 0,
    elapsedMs: elapsedMs(run),
    sizeBytes: present.sizeBytes,
    imageRef: present.id,
  };
}

/** How one attempt ended: the stored reference, or the error; with its finished event. */
interface AttemptOutcome {
  imageRef?: string;
  error?: unknown;
  /** The attempt tried looked-up (plugin) credentials that were not renewed after a refusal. */
  renewable: boolean;
  finished: Extract<PullEvent, { type: "attempt-finished" }>;
}

/**
 * One attempt from admission to its end: waits for the gate, then for a parallel slot (so an
 * image that waits never holds a slot), looks up late credentials (renewed ones with `renew`),
 * pulls. `"stopped"` when the run ended while it waited.
 */
async function oneAttempt(
  target: PullTarget,
  attempt: number,
  run: Run,
  renew: boolean,
): Promise<AttemptOutcome | "stopped"> {
  const { image } = target;
  const timeoutMs = Math.min(
    attemptTimeoutMs(attempt, run.options.schedule),
    run.deadline - run.clock.now(),
  );
  let release: () => void;
  try {
    await run.options.gate?.admit(image, run.signal);
    release = await run.slots.acquire(run.signal);
  } catch {
    return "stopped";
  }
  const looked = target.lookupCredentials
    ? await target.lookupCredentials(run.signal, { renew })
    : [];
  const withCredentials = { ...target, credentials: [...target.credentials, ...looked] };
  run.options.gate?.started?.(image);
  const startedAt = run.clock.now();
  const startedAtWall = run.clock.wallNow();
  const attemptId = run.newAttemptId();
  run.emit({
    type: "attempt-started",
    image,
    attempt,
    attemptId,
    timeoutMs,
    elapsedMs: elapsedMs(run),
  });
  let imageRef: string | undefined;
  let error: unknown;
  // Assigned by a callback, which TypeScript cannot see: keep it from narrowing to undefined.
  let progress = undefined as AttemptProgress | undefined;
  try {
    imageRef = await attemptPull(
      withCredentials,
      { attempt, attemptId },
      timeoutMs,
      run,
      (p) => progress = p,
    );
  } catch (e) {
    error = e;
  } finally {
    release();
  }
  if (imageRef !== undefined) progress = progressWhenPulled(progress);
  const started = { image, attempt, attemptId, startedAt, startedAtWall, timeoutMs };
  const renewable = !renew && looked.length > 0;
  return { imageRef, error, renewable, finished: finishedEvent(started, progress, run) };
}

/** The `attempt-finished` event of an attempt, with what it received when that is known. */
function finishedEvent(
  started: {
    image: string;
    attempt: number;
    attemptId: string;
    /** On the run's monotonic clock, for the duration. */
    startedAt: number;
    /** On the wall clock, for people. */
    startedAtWall: number;
    timeoutMs: number;
  },
  progress: AttemptProgress | undefined,
  run: Run,
): AttemptOutcome["finished"] {
  const { startedAt, startedAtWall, ...rest } = started;
  const durationMs = run.clock.now() - startedAt;
  return {
    type: "attempt-finished",
    ...rest,
    startedAt: startedAtWall,
    durationMs,
    elapsedMs: elapsedMs(run),
    receivedBytes: progress?.receivedBytes,
    bytesPerSecond: progress && durationMs > 0
      ? Math.round(progress.receivedBytes / (durationMs / 1000))
      : undefined,
  };
}

/** The image's result after a successful attempt, with the size the runtime stored. */
async function pulledResult(outcome: AttemptOutcome, run: Run): Promise<ImageResult> {
  const { image, attempt } = outcome.finished;
  const imageRef = outcome.imageRef!;
  run.options.gate?.landed(image, { pulled: true });
  // Asked again while the runtime's socket is away, so the summary knows the image's size.
  const stored = await lookUpStoredImage(run.options.runtime, imageRef, {
    signal: run.signal,
    clock: run.clock,
  });
  run.emit({ ...outcome.finished, sizeBytes: stored?.sizeBytes });
  return {
    image,
    status: "pulled",
    attempts: attempt,
    elapsedMs: elapsedMs(run),
    sizeBytes: stored?.sizeBytes,
    imageRef,
  };
}

/** The next attempt after a failed one: when, and whether with renewed credentials. */
interface NextAttempt {
  delayMs: number;
  renewCredentials: boolean;
}

/**
 * After a failed attempt: the image's final result (stopped, an error retrying cannot fix, or no
 * time left for another attempt), or when the next attempt starts. Credentials the registry
 * refused get one more attempt at once when they came from a plugin, whose cached answer may have
 * expired at the registry before its stated time: the plugins are asked again for it.
 */
function afterFailedAttempt(
  target: PullTarget,
  outcome: AttemptOutcome,
  lastError: string,
  run: Run,
): ImageResult | NextAttempt {
  const { attempt } = outcome.finished;
  const rateLimited = isRateLimited(lastError);
  const refusal = pullRefusal(outcome.error);
  const renewing = refusal === "unauthorized" && outcome.renewable;
  // Waves hear "permanent" only when this node gives up on it, not before a renewal.
  const permanent = refusal !== undefined && !renewing;
  run.options.gate?.failed(target.image, { rateLimited, permanent });
  run.emit({ ...outcome.finished, error: lastError });
  if (run.signal.aborted) return failed(target, attempt, lastError, run);
  if (renewing) return { delayMs: 0, renewCredentials: true };
  if (refusal) return { ...failed(target, attempt, lastError, run), failure: "permanent" };
  const delayMs = retryDelay(attempt, rateLimited, run);
  if (run.clock.now() + delayMs >= run.deadline) {
    // The next attempt could not start before the deadline: say so now instead of waiting.
    return { ...failed(target, attempt, lastError, run), failure: "overall-timeout" };
  }
  return { delayMs, renewCredentials: false };
}

/**
 * The delay before the next attempt; longer after a registry's rate limit when no gate
 * (cluster-wide waves) is there to slow the whole cluster down instead.
 */
function retryDelay(attempt: number, rateLimited: boolean, run: Run): number {
  const delayMs = retryDelayMs(attempt, run.options.schedule, run.random);
  if (!rateLimited || run.options.gate) return delayMs;
  return Math.min(
    run.options.schedule.maxDelayMs,
    delayMs * (run.options.rateLimitDelayFactor ?? 4),
  );
}

/**
 * One attempt: every credential in turn, all within one attempt. The attempt ends at its
 * wall-clock timeout, or, when progress is watched, when the monitor says it stalled.
 */
async function attemptPull(
  target: PullTarget,
  ids: { attempt: number; attemptId: string },
  timeoutMs: number,
  run: Run,
  report: (progress: AttemptProgress) => void,
): Promise<string> {
  const attempt = new AbortController();
  const signal = AbortSignal.any([run.signal, attempt.signal]);
  const interval = run.options.progressEventIntervalMs ?? 10_000;
  let lastEvent = run.clock.now();
  const watch = run.options.progress?.watch(
    target.image,
    timeoutMs,
    (reason) => attempt.abort(reason),
    (progress) => {
      const now = run.clock.now();
      if (progress.downloading) run.options.gate?.progressed(target.image);
      if (progress.downloading && now - lastEvent >= interval) {
        lastEvent = now;
        run.emit({
          type: "progress",
          image: target.image,
          ...ids,
          progress,
          elapsedMs: now - run.start,
        });
      }
    },
  );
  if (!watch) {
    run.clock.sleep(timeoutMs, signal).then(
      () => attempt.abort(new AttemptTimeoutError(timeoutMs)),
      () => {},
    );
  }
  try {
    const credentials = target.credentials.length ? target.credentials : [undefined];
    let lastError: unknown;
    for (const auth of credentials) {
      try {
        return await run.options.runtime.pullImage(target.image, { auth, signal });
      } catch (e) {
        if (signal.aborted) throw signal.reason;
        lastError = e;
      }
    }
    throw lastError;
  } finally {
    if (watch) {
      report(watch.progress());
      watch.stop();
    }
    attempt.abort(new Error("the attempt is over"));
  }
}

function findImage(image: string, run: Run): Promise<CriImage | undefined> {
  return run.options.runtime.imageStatus(image, { signal: run.signal });
}

function failed(target: PullTarget, attempts: number, error: string, run: Run): ImageResult {
  const reason = run.signal.reason;
  const failure: FailureKind = reason instanceof OverallTimeoutError
    ? "overall-timeout"
    : run.signal.aborted
    ? "interrupted"
    : "permanent";
  const because = run.signal.aborted && attempts === 0 ? describeError(reason) : error;
  return {
    image: target.image,
    status: "failed",
    attempts,
    elapsedMs: run.clock.now() - run.start,
    error: because,
    failure,
  };
}

/** One line describing why an attempt failed, without stack traces. */
export function describeError(error: unknown): string {
  if (error instanceof CriError) return error.details;
  if (error instanceof Error) return error.message;
  return String(error);
}
