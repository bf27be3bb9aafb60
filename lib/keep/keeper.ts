/**
 * `keep`'s idle loop: runs one cycle at the start, one after each change of the image list and
 * one every refresh interval (jittered), never two at once, and stops on its signal. A cycle is
 * whatever `runCycle` does (in `keep`, a child process that pulls, pins and releases, then exits,
 * so that none of the pulling code stays loaded while idle). Built-ins only.
 *
 * @module
 */
import type { Logger } from "../core/log.ts";
import { type Alarm, setAlarm } from "./alarm.ts";

/** What a cycle does: `change` pulls what is missing; `refresh` pulls every tag again. */
export type CycleKind = "change" | "refresh";

/** Options for {@linkcode keepImages}. */
export interface KeeperOptions {
  /** Runs one cycle; resolves with its exit status. Must stop promptly when `signal` aborts. */
  runCycle: (kind: CycleKind, signal: AbortSignal) => Promise<number>;
  /** Starts watching the list; calls `changed` after each change. Resolves when `signal` aborts. */
  watchList: (changed: () => void, signal: AbortSignal) => Promise<void>;
  /** The mean time between two refreshes, in milliseconds. */
  refreshIntervalMs: number;
  /** Stops the loop (SIGTERM); the running cycle is stopped with it. */
  signal: AbortSignal;
  /** Where the loop logs. */
  logger: Logger;
  /** A number in [0, 1), for the jitter. @default {Math.random} */
  random?: () => number;
  /**
   * After a cycle that could not finish (runtime unreachable, …), the next one starts after
   * this long, in milliseconds.
   * @default {60000}
   */
  retryMs?: number;
}

/** The share of the refresh interval by which each wait varies, either way. */
export const REFRESH_JITTER = 0.1;

/**
 * The wait before the next refresh: `intervalMs` ± {@linkcode REFRESH_JITTER}, so that nodes
 * started together by a rollout drift apart instead of pulling in lockstep.
 */
export function refreshDelayMs(intervalMs: number, random: () => number): number {
  return Math.round(intervalMs * (1 - REFRESH_JITTER + 2 * REFRESH_JITTER * random()));
}

/** Exit statuses after which the cycle did what it could (images failed or lines were bad). */
const FINISHED = new Set([0, 1, 2]);

/** Runs cycles until `options.signal` aborts; resolves once the running cycle has stopped. */
export async function keepImages(options: KeeperOptions): Promise<void> {
  const { signal, logger } = options;
  const random = options.random ?? Math.random;
  let pending = "change" as CycleKind | undefined;
  let wake: (() => void) | undefined;
  const request = (kind: CycleKind) => {
    if (pending !== "refresh") pending = kind;
    wake?.();
  };
  const alarms: Record<"refresh" | "retry", Alarm | undefined> = {
    refresh: undefined,
    retry: undefined,
  };
  const armRefresh = (delayMs: number) => {
    alarms.refresh?.cancel();
    alarms.refresh = setAlarm(delayMs, () => request("refresh"));
  };
  const watching = options.watchList(() => {
    logger.info("the image list changed");
    request("change");
  }, signal);
  armRefresh(refreshDelayMs(options.refreshIntervalMs, random));
  signal.addEventListener("abort", () => wake?.(), { once: true });
  try {
    while (!signal.aborted) {
      if (pending === undefined) {
        await new Promise<void>((resolve) => wake = resolve);
        wake = undefined;
        continue;
      }
      const kind = pending;
      pending = undefined;
      if (kind === "refresh") armRefresh(refreshDelayMs(options.refreshIntervalMs, random));
      const code = await options.runCycle(kind, signal);
      if (signal.aborted) break;
      logger.info("keep cycle done", { cycle: kind, exit_status: code });
      if (FINISHED.has(code)) continue;
      const retryMs = options.retryMs ?? 60_000;
      logger.warn("keep cycle did not finish; trying again later", {
        exit_status: code,
        retry_in_ms: retryMs,
      });
      alarms.retry?.cancel();
      alarms.retry = setAlarm(retryMs, () => request("change"));
    }
  } finally {
    alarms.refresh?.cancel();
    alarms.retry?.cancel();
    await watching;
  }
}
