/**
 * Peak resident memory of a running process, for benchmarks that measure a subprocess they
 * spawned: `VmHWM` of `/proc/<pid>/status` (the kernel's own high-water mark of the whole
 * process) is sampled until the process exits, and the last value read is its peak.
 *
 * A zombie has no memory map, so the kernel's figure cannot be read after the exit; the last
 * sample is at most one interval old, and what a process allocates in its last milliseconds
 * (printing its summary) is not what sets its peak.
 *
 * @module
 */

/** Options for {@linkcode trackPeakMemory}. */
export interface TrackPeakMemoryOptions {
  /** How often to read `/proc/<pid>/status`, in milliseconds. @default {20} */
  intervalMs?: number;
}

/** A running sampler; `stop()` resolves with the peak seen, in KiB (0 if none was read). */
export interface PeakMemoryTracker {
  /** Stops sampling and returns the highest `VmHWM` read, in KiB. */
  stop(): Promise<number>;
}

/**
 * Starts sampling the `VmHWM` of process `pid` every `intervalMs` until `stop()`.
 *
 * @example
 * ```ts
 * const child = new Deno.Command("sleep", { args: ["1"] }).spawn();
 * const tracker = trackPeakMemory(child.pid);
 * await child.status;
 * console.log(`${await tracker.stop()} KiB`);
 * ```
 */
export function trackPeakMemory(
  pid: number,
  options: TrackPeakMemoryOptions = {},
): PeakMemoryTracker {
  const intervalMs = options.intervalMs ?? 20;
  let peakKiB = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        const status = await Deno.readTextFile(`/proc/${pid}/status`);
        const match = /VmHWM:\s+(\d+) kB/.exec(status);
        if (match) peakKiB = Math.max(peakKiB, Number(match[1]));
      } catch {
        // gone (or not yet readable): keep what was read
      }
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return peakKiB;
    },
  };
}
