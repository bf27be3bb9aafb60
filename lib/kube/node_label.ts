/**
 * The node label that tells whether a run put every image on the node:
 * `<prefix>/<instance>=succeeded|failed`.
 *
 * @module
 */
import type { NodeApi } from "./kube_client.ts";
import { retryCall, type RetryCallOptions } from "./retry_call.ts";

/**
 * The default label prefix: the original tool's, so `nodeSelector`s written for it
 * (`image-prefetcher.stackrox.io/<instance>: succeeded`) keep working after a migration.
 */
export const DEFAULT_LABEL_PREFIX = "image-prefetcher.stackrox.io";

/** What the label says. */
export type RunOutcome = "succeeded" | "failed";

/**
 * Sets label `key` of node `node` to `value` with a JSON merge patch (only that label changes,
 * and no resourceVersion is needed, so there is nothing to conflict with), retrying server
 * errors, throttling and lost connections within `options`' bounds.
 *
 * @example Usage
 * ```ts
 * import { labelNode } from "./node_label.ts";
 * import type { NodeApi } from "./kube_client.ts";
 * import { systemClock } from "../core/clock.ts";
 *
 * async function markDone(api: NodeApi) {
 *   await labelNode(api, "node-a", "image-prefetcher.stackrox.io/my-images", "succeeded", {
 *     clock: systemClock,
 *   });
 * }
 * ```
 *
 * @throws {KubeApiError} The last error, when the label could not be written.
 */
export async function labelNode(
  api: NodeApi,
  node: string,
  key: string,
  value: RunOutcome,
  options: RetryCallOptions,
): Promise<void> {
  const patch = { metadata: { labels: { [key]: value } } };
  await retryCall(
    () => api.patchNode(node, "application/merge-patch+json", patch, options.signal),
    options,
  );
}
