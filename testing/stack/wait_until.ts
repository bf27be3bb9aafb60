/**
 * Polls a condition until it holds, for waiting on daemons to become ready.
 *
 * @module
 */

/** Options for {@linkcode waitUntil}. */
export interface WaitUntilOptions {
  /** Give up after this many milliseconds. @default {15000} */
  timeoutMs?: number;
  /** Pause between attempts, in milliseconds. @default {50} */
  intervalMs?: number;
  /** Stop early (and return false) when this returns true, e.g. when the daemon has exited. */
  abandon?: () => boolean;
}

/**
 * Calls `probe` until it resolves to true; returns true then, or false on timeout or abandon.
 * A probe that throws counts as "not yet".
 */
export async function waitUntil(
  probe: () => Promise<boolean> | boolean,
  options: WaitUntilOptions = {},
): Promise<boolean> {
  const deadline = Date.now() + (options.timeoutMs ?? 15_000);
  const interval = options.intervalMs ?? 50;
  while (Date.now() < deadline) {
    if (options.abandon?.()) return false;
    try {
      if (await probe()) return true;
    } catch {
      // not ready yet
    }
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
  return false;
}
