/**
 * Startup taints: `key[=value]:effect` as `kubectl taint` writes them, and their removal from a
 * node with a JSON patch whose `test` operation makes a concurrent change of the taints fail
 * (422) instead of being overwritten; the node is then read again and the removal retried.
 *
 * @module
 */
import type { KubeNode, NodeApi, Taint } from "./kube_client.ts";
import { isRetryable, KubeApiError } from "./kube_error.ts";
import { retryCall, type RetryCallOptions } from "./retry_call.ts";

/** The taint to remove: key, value (any when not given) and effect. */
export interface TaintSpec {
  /** The key, like `example.com/prefetching`. */
  key: string;
  /** The value; when undefined, a taint with any value matches. */
  value?: string;
  /** `NoSchedule`, `PreferNoSchedule` or `NoExecute`. */
  effect: "NoSchedule" | "PreferNoSchedule" | "NoExecute";
}

const EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"];
const QUALIFIED_NAME =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/**
 * Parses `key[=value]:effect`.
 *
 * @example Usage
 * ```ts
 * import { parseTaint } from "./startup_taint.ts";
 *
 * parseTaint("example.com/prefetching=true:NoSchedule");
 * // { key: "example.com/prefetching", value: "true", effect: "NoSchedule" }
 * ```
 *
 * @returns The taint, or a sentence saying what is wrong.
 */
export function parseTaint(text: string): TaintSpec | string {
  const colon = text.lastIndexOf(":");
  const effect = colon === -1 ? "" : text.slice(colon + 1);
  const keyValue = colon === -1 ? text : text.slice(0, colon);
  const eq = keyValue.indexOf("=");
  const key = eq === -1 ? keyValue : keyValue.slice(0, eq);
  const value = eq === -1 ? undefined : keyValue.slice(eq + 1);
  if (!EFFECTS.includes(effect)) {
    return `"${text}" has no effect; write key[=value]:effect with effect NoSchedule, ` +
      "PreferNoSchedule or NoExecute, like example.com/prefetching=true:NoSchedule";
  }
  if (!QUALIFIED_NAME.test(key) || key.split("/").pop()!.length > 63) {
    return `"${key}" is not a valid taint key; write it like example.com/prefetching`;
  }
  if (value !== undefined && (value.length > 63 || !VALUE.test(value))) {
    return `"${value}" is not a valid taint value (at most 63 of [A-Za-z0-9-_.])`;
  }
  return { key, ...(value === undefined ? {} : { value }), effect: effect as TaintSpec["effect"] };
}

/** Writes a taint back as `key[=value]:effect`. */
export function formatTaint(taint: TaintSpec): string {
  return `${taint.key}${taint.value === undefined ? "" : `=${taint.value}`}:${taint.effect}`;
}

/** Whether node taint `taint` is the one `spec` names. */
export function taintMatches(spec: TaintSpec, taint: Taint): boolean {
  return taint.key === spec.key && taint.effect === spec.effect &&
    (spec.value === undefined || (taint.value ?? "") === spec.value);
}

/**
 * Removes the taint `spec` names from node `node`: reads the node, and when the taint is there,
 * sends `[{op: test, path: /spec/taints/<i>, value: <the taint>}, {op: remove, path:
 * /spec/taints/<i>}]`. A 422 from the test (the taints changed meanwhile), a 409, 429, 5xx or lost
 * connection starts over from the read, within `options`' bounds.
 *
 * @example Usage
 * ```ts
 * import { removeTaint } from "./startup_taint.ts";
 * import type { NodeApi } from "./kube_client.ts";
 * import { systemClock } from "../core/clock.ts";
 *
 * async function ready(api: NodeApi) {
 *   const taint = { key: "example.com/prefetching", effect: "NoSchedule" } as const;
 *   return await removeTaint(api, "node-a", taint, { clock: systemClock });
 * }
 * ```
 *
 * @returns `removed`, or `absent` when the node did not have it.
 * @throws {KubeApiError} The last error, when the taint could not be removed.
 */
export async function removeTaint(
  api: NodeApi,
  node: string,
  spec: TaintSpec,
  options: RetryCallOptions,
): Promise<"removed" | "absent"> {
  return await retryCall(async () => {
    const current: KubeNode = await api.getNode(node, options.signal);
    const taints = current.spec?.taints ?? [];
    const index = taints.findIndex((taint) => taintMatches(spec, taint));
    if (index === -1) return "absent";
    await api.patchNode(node, "application/json-patch+json", [
      { op: "test", path: `/spec/taints/${index}`, value: taints[index] },
      { op: "remove", path: `/spec/taints/${index}` },
    ], options.signal);
    return "removed";
  }, {
    ...options,
    retryable: (error) =>
      isRetryable(error) || (error instanceof KubeApiError && error.status === 422),
  });
}
