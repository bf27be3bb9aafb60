/**
 * One builder of `MetricsResult`s for the store's and the summary's unit tests: a fresh attempt
 * id each call, and plain defaults a test overrides with `extra`.
 *
 * @module
 */
import type { MetricsResult, Outcome } from "../lib/metrics/protocol.ts";

let ids = 0;

/**
 * A result of `node` pulling `image` with `outcome`: attempt 0 when already present, else 1,
 * started at 1,000 ms, 100 ms long, 2 images in the run; `extra` overrides any field.
 */
export function metricsResult(
  node: string,
  image: string,
  outcome: Outcome,
  extra: Partial<MetricsResult> = {},
): MetricsResult {
  return {
    attemptId: `id-${++ids}`,
    startedAt: 1_000,
    image,
    node,
    outcome,
    attempt: outcome === "present" ? 0 : 1,
    durationMs: 100,
    imagesTotal: 2,
    ...extra,
  };
}
