/**
 * How busy the whole machine's CPUs were between two moments, from `/proc/stat`: benchmarks
 * print it beside their timings, so a reader can tell a result bound by the link from one
 * bound by 2 cores.
 *
 * @module
 */

/** A reading of the aggregate CPU line of `/proc/stat`, in clock ticks. */
export interface CpuSample {
  /** Ticks spent on anything but idle and I/O wait. */
  busy: number;
  /** All ticks. */
  total: number;
}

/** Reads the aggregate `cpu` line of `/proc/stat`. */
export async function sampleCpu(): Promise<CpuSample> {
  const line = (await Deno.readTextFile("/proc/stat")).split("\n")[0];
  // cpu user nice system idle iowait irq softirq steal guest guest_nice
  const ticks = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = ticks.reduce((sum, t) => sum + t, 0);
  return { busy: total - ticks[3] - ticks[4], total };
}

/** The fraction (0–1) of CPU time that was busy, all cores together, from `before` to `after`. */
export function busyFraction(before: CpuSample, after: CpuSample): number {
  const total = after.total - before.total;
  return total > 0 ? (after.busy - before.busy) / total : 0;
}
