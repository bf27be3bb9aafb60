/**
 * Watches pulls in progress through a {@linkcode ProgressSource} and decides when an attempt must
 * be cancelled: when, after its first bytes, it has received nothing for the stall timeout while
 * bytes should be flowing, or, while no download is visible (resolving, or a pull the source
 * cannot see), when the wall-clock attempt timeout has passed since the last sign of progress. An
 * attempt that is still receiving bytes, or whose blobs have all arrived and that the source shows
 * unpacking, is never cancelled by its timeout: only the run's overall timeout ends it.
 *
 * Runtimes show bytes in steps (containerd 1.6 moves a download's offset 1 MiB at a time), so a
 * download that is merely slow looks frozen between steps. When many images share the node's
 * link, each one's fair share of the node's receive rate can be slow enough that a step takes
 * longer than the stall timeout; the monitor then waits for three steps' worth of that share
 * before calling an attempt stalled. A node that receives nothing at all gets the plain stall
 * timeout.
 *
 * One sampling loop serves every attempt being watched.
 *
 * @module
 */
import { type Clock, systemClock } from "../core/clock.ts";
import { formatDuration } from "../core/duration.ts";
import type { ImageProgress, ProgressSource } from "./progress_source.ts";

/** Options for {@linkcode ProgressMonitor}. */
export interface ProgressMonitorOptions {
  /** Where samples come from. */
  source: ProgressSource;
  /** Cancel an attempt that has received nothing for this long while downloading. */
  stallTimeoutMs: number;
  /**
   * How often the source is sampled, in milliseconds.
   * @default {1000}
   */
  intervalMs?: number;
  /**
   * Time and waits.
   * @default {systemClock}
   */
  clock?: Clock;
  /**
   * The smallest byte step the runtime shows for a download.
   * @default {1 MiB, containerd 1.6's copy buffer}
   */
  stepBytes?: number;
  /** Told once when sampling fails, with the error. */
  onSampleError?: (error: unknown) => void;
}

/** What an attempt has received so far. */
export interface AttemptProgress {
  /** Bytes received by this attempt. */
  receivedBytes: number;
  /** Bytes of the whole image, when known. */
  totalBytes?: number;
  /** Bytes of the image already in the content store, received or not by this attempt. */
  storedBytes: number;
  /** Recent receive rate, in bytes per second (over the last few samples). */
  bytesPerSecond: number;
  /** Whether blobs are downloading right now. */
  downloading: boolean;
  /** Whether every blob has arrived and the runtime is applying the layers. @default {false} */
  unpacking?: boolean;
}

/** An attempt received nothing for the stall timeout. */
export class StallError extends Error {
  /** Creates the error for an attempt that was silent for `stallTimeoutMs`. */
  constructor(readonly stallTimeoutMs: number, readonly receivedBytes: number) {
    super(
      `the attempt received nothing for ${formatDuration(stallTimeoutMs)} ` +
        `(stalled after ${receivedBytes} bytes)`,
    );
    this.name = "StallError";
  }
}

/** An attempt showed no progress for its whole wall-clock timeout. */
export class NoProgressTimeoutError extends Error {
  /** Creates the error for an attempt that was allowed `timeoutMs` without progress. */
  constructor(readonly timeoutMs: number) {
    super(`the attempt timed out after ${formatDuration(timeoutMs)} without progress`);
    this.name = "NoProgressTimeoutError";
  }
}

/** One attempt being watched. */
export interface Watch {
  /** What the attempt has received so far. */
  progress(): AttemptProgress;
  /** Stops watching (the attempt is over). */
  stop(): void;
}

const RATE_WINDOW = 5;
/** How far back the node's receive rate looks: several of the slowest steps worth waiting for. */
const NODE_RATE_WINDOW_MS = 120_000;
const EMPTY: ImageProgress = Object.freeze({ receivedBytes: 0, activeDownloads: 0 });

/** Samples progress for every watched attempt and cancels those that stall. */
export class ProgressMonitor {
  readonly #options: ProgressMonitorOptions;
  readonly #clock: Clock;
  readonly #watches = new Set<WatchState>();
  #loop?: AbortController;
  #reportedError = false;
  #awaitingBaseline: WatchState[] = [];
  /** Per tick: its time and how many bytes each watched image grew since the previous tick. */
  #nodeHistory: Array<[number, Map<string, number>]> = [];

  /** Creates a monitor; it samples only while something is watched. */
  constructor(options: ProgressMonitorOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
  }

  /**
   * Watches one attempt at pulling `image`. `cancel` is called (once) with a
   * {@linkcode StallError} or a {@linkcode NoProgressTimeoutError} when the attempt must stop.
   */
  watch(
    image: string,
    timeoutMs: number,
    cancel: (reason: Error) => void,
    onProgress?: (progress: AttemptProgress) => void,
  ): Watch {
    const now = this.#clock.now();
    const state: WatchState = {
      image,
      timeoutMs,
      cancel,
      onProgress,
      cancelled: false,
      lastActivityAt: now,
      lastGrowthAt: now,
      downloading: false,
      unpacking: false,
      seenGrowth: false,
      history: [],
    };
    this.#watches.add(state);
    if (!this.#loop) this.#start();
    this.#sampleBaseline(state);
    return {
      progress: () => progressOf(state),
      stop: () => {
        this.#watches.delete(state);
        if (this.#watches.size === 0) {
          this.#nodeHistory = [];
          this.#loop?.abort();
          this.#loop = undefined;
        }
      },
    };
  }

  /**
   * Records what is stored before an attempt's first bytes arrive (the loop's first sample may
   * come a whole interval later). Attempts that start together share one sample.
   */
  #sampleBaseline(state: WatchState): void {
    this.#awaitingBaseline.push(state);
    if (this.#awaitingBaseline.length > 1) return;
    setTimeout(() => {
      const states = this.#awaitingBaseline;
      this.#awaitingBaseline = [];
      const images = [...new Set(states.map((s) => s.image))];
      this.#options.source.sample(images).then((samples) => {
        for (const s of states) s.baseline ??= samples.get(s.image) ?? EMPTY;
      }, () => {});
    }, 0);
  }

  #start(): void {
    const loop = new AbortController();
    this.#loop = loop;
    (async () => {
      const interval = this.#options.intervalMs ?? 1_000;
      while (!loop.signal.aborted) {
        try {
          await this.#clock.sleep(interval, loop.signal);
        } catch {
          return;
        }
        const images = [...new Set([...this.#watches].map((w) => w.image))];
        const samples = await this.#sample(images, interval, loop.signal);
        if (loop.signal.aborted) return;
        const now = this.#clock.now();
        const before = new Map([...this.#watches].map((w) => [w, w.latest?.receivedBytes]));
        for (const watch of this.#watches) {
          update(watch, samples?.get(watch.image), samples !== undefined, now);
        }
        this.#recordNodeRate(before, now);
        for (const watch of [...this.#watches]) {
          this.#judge(watch, now);
          if (!watch.cancelled) watch.onProgress?.(progressOf(watch));
        }
      }
    })();
  }

  async #sample(
    images: string[],
    intervalMs: number,
    loopSignal: AbortSignal,
  ): Promise<Map<string, ImageProgress> | undefined> {
    // A sample may not take long: a slow answer is treated as no answer.
    const call = new AbortController();
    const signal = AbortSignal.any([call.signal, loopSignal]);
    this.#clock.sleep(Math.max(2 * intervalMs, 2_000), signal)
      .then(() => call.abort(new Error("no progress sample within the time allowed")), () => {});
    try {
      return await this.#options.source.sample(images, { signal });
    } catch (error) {
      if (!this.#reportedError && !loopSignal.aborted) {
        this.#reportedError = true;
        this.#options.onSampleError?.(error);
      }
      return undefined;
    } finally {
      call.abort();
    }
  }

  /** Adds this tick's bytes, over every watched image, to the node's recent receive rate. */
  #recordNodeRate(before: Map<WatchState, number | undefined>, now: number): void {
    const grown = new Map<string, number>();
    for (const [watch, previous] of before) {
      // Attempts at the same image see the same bytes: count them once.
      if (grown.has(watch.image) || previous === undefined || !watch.latest) continue;
      grown.set(watch.image, Math.max(0, watch.latest.receivedBytes - previous));
    }
    this.#nodeHistory.push([now, grown]);
    while (now - this.#nodeHistory[0][0] > NODE_RATE_WINDOW_MS) this.#nodeHistory.shift();
  }

  /**
   * How long a downloading attempt may show no new bytes before it counts as stalled: the stall
   * timeout, or three steps at the slower of its own rate while it flowed and its fair share of
   * the node's recent rate, whichever is longer.
   */
  #allowedSilenceMs(watch: WatchState): number {
    const rates = [ownFlowRate(watch), this.#fairShare(watch.image)].filter((r) => r > 0);
    if (rates.length === 0) return this.#options.stallTimeoutMs;
    return Math.max(this.#options.stallTimeoutMs, this.#stepsMs(Math.min(...rates)));
  }

  /** How long three of the runtime's byte steps take at `bytesPerSecond`. */
  #stepsMs(bytesPerSecond: number): number {
    return (3 * (this.#options.stepBytes ?? 1 << 20) / bytesPerSecond) * 1000;
  }

  /**
   * What the other images downloading now receive each, on average, over the recent window, in
   * bytes per second: what `image` could expect if the link is merely shared.
   */
  #fairShare(image: string): number {
    const history = this.#nodeHistory;
    if (history.length < 2) return 0;
    const seconds = (history.at(-1)![0] - history[0][0]) / 1000;
    let bytes = 0;
    for (const [, grown] of history.slice(1)) {
      for (const [other, n] of grown) if (other !== image) bytes += n;
    }
    const others = new Set(
      [...this.#watches].filter((w) => w.downloading && w.image !== image).map((w) => w.image),
    );
    if (seconds <= 0 || others.size === 0) return 0;
    return bytes / seconds / others.size;
  }

  #judge(watch: WatchState, now: number): void {
    if (watch.cancelled) return;
    if (watch.downloading && watch.seenGrowth) {
      const allowedSilenceMs = this.#allowedSilenceMs(watch);
      if (now - watch.lastGrowthAt >= allowedSilenceMs) {
        watch.cancelled = true;
        const received = progressOf(watch).receivedBytes;
        watch.cancel(new StallError(Math.round(allowedSilenceMs), received));
      }
      return;
    }
    // Unpacking is alive however long it takes (a stuck one is for the overall timeout); the
    // wall-clock timeout counts again from its end.
    if (watch.unpacking) return;
    // Nothing to judge by bytes yet (resolving, a first step not shown yet, or a pull the source
    // cannot see): the wall-clock timeout, counted from the last sign of progress, and stretched
    // while other images show that the link is merely shared and slow.
    const fairShare = watch.downloading ? this.#fairShare(watch.image) : 0;
    const allowedMs = Math.max(watch.timeoutMs, fairShare > 0 ? this.#stepsMs(fairShare) : 0);
    if (now - watch.lastActivityAt >= allowedMs) {
      watch.cancelled = true;
      watch.cancel(new NoProgressTimeoutError(watch.timeoutMs));
    }
  }
}

interface WatchState {
  image: string;
  timeoutMs: number;
  cancel: (reason: Error) => void;
  onProgress?: (progress: AttemptProgress) => void;
  cancelled: boolean;
  /** The last time bytes grew or the download phase changed. */
  lastActivityAt: number;
  /** The last time bytes grew (or a download started). */
  lastGrowthAt: number;
  downloading: boolean;
  /** Whether the last sample showed the blobs all arrived and the layers being applied. */
  unpacking: boolean;
  /** When the download became visible. */
  downloadStartedAt?: number;
  /** Whether this attempt's bytes have grown at least once. */
  seenGrowth: boolean;
  /** The first sample of this attempt: what was in the store before it. */
  baseline?: ImageProgress;
  latest?: ImageProgress;
  /** Recent (time, bytes) pairs for the rate. */
  history: Array<[number, number]>;
}

function update(
  watch: WatchState,
  sample: ImageProgress | undefined,
  answered: boolean,
  now: number,
): void {
  if (!answered) return; // no news: keep the last phase, let the clocks run
  if (!sample) {
    if (watch.downloading || watch.unpacking) watch.lastActivityAt = now;
    watch.downloading = false;
    watch.unpacking = false;
    return;
  }
  const previous = watch.latest ?? watch.baseline;
  const grew = previous !== undefined && sample.receivedBytes > previous.receivedBytes;
  const downloading = sample.activeDownloads > 0 ||
    (sample.totalBytes !== undefined && sample.receivedBytes < sample.totalBytes);
  if (grew) watch.seenGrowth = true;
  if (downloading) watch.downloadStartedAt ??= now;
  if (grew || downloading !== watch.downloading) {
    watch.lastGrowthAt = now;
    watch.lastActivityAt = now;
  }
  const unpacking = !downloading && sample.unpacking === true;
  if (unpacking || watch.unpacking) watch.lastActivityAt = now;
  watch.downloading = downloading;
  watch.unpacking = unpacking;
  watch.latest = sample;
  watch.history.push([now, sample.receivedBytes]);
  if (watch.history.length > RATE_WINDOW) watch.history.shift();
}

/** The attempt's own rate from the start of its download to its last growth, in bytes/s. */
function ownFlowRate(watch: WatchState): number {
  if (!watch.seenGrowth || watch.downloadStartedAt === undefined) return 0;
  const seconds = (watch.lastGrowthAt - watch.downloadStartedAt) / 1000;
  return seconds > 0 ? progressOf(watch).receivedBytes / seconds : 0;
}

function progressOf(watch: WatchState): AttemptProgress {
  const latest = watch.latest;
  const [first, last] = [watch.history[0], watch.history.at(-1)];
  const seconds = first && last ? (last[0] - first[0]) / 1000 : 0;
  return {
    receivedBytes: latest && watch.baseline
      ? Math.max(0, latest.receivedBytes - watch.baseline.receivedBytes)
      : 0,
    totalBytes: latest?.totalBytes,
    storedBytes: latest?.receivedBytes ?? 0,
    bytesPerSecond: seconds > 0 ? Math.max(0, (last![1] - first![1]) / seconds) : 0,
    downloading: watch.downloading,
    unpacking: watch.unpacking,
  };
}
