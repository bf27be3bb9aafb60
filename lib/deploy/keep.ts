/**
 * `deploy.ts --keep`: the DaemonSet's main container runs `keep` instead of `sleep`, with the
 * init container's `fetch` flags and `--refresh-interval`, so the nodes follow edits of the
 * ConfigMap, refresh moved tags and release their pins of what left the list. Both containers
 * then write failed images as Events on their pod, which takes the pod's identity from the
 * downward API, a token, and a Role that may `create` and `patch` events in the namespace only.
 *
 * @module
 */
import { DurationError, parseDuration } from "../core/duration.ts";
import { DeployInputError } from "./deploy_error.ts";
import type { Instance, Json, KubernetesObject } from "./instance.ts";
import { prefetchRole } from "./rbac_objects.ts";

/** `keep`'s refresh interval unless `refreshInterval` says otherwise. */
export const DEFAULT_REFRESH_INTERVAL = "6h";

/** What `--keep` adds to an instance. */
export interface KeepSettings {
  /** `--refresh-interval` of `keep`, as given (a duration). */
  refreshInterval: string;
}

/** Checks `keep` and `refreshInterval`; `undefined` without `keep`. */
export function resolveKeep(
  options: { keep?: boolean; refreshInterval?: string },
): KeepSettings | undefined {
  if (!options.keep) {
    if (options.refreshInterval === undefined) return undefined;
    throw new DeployInputError(
      "--refresh-interval tunes --keep: add --keep, or leave --refresh-interval out.",
    );
  }
  const refreshInterval = options.refreshInterval ?? DEFAULT_REFRESH_INTERVAL;
  let ms: number;
  try {
    ms = parseDuration(refreshInterval);
  } catch (error) {
    if (!(error instanceof DurationError)) throw error;
    throw new DeployInputError(`--refresh-interval: ${error.message}`);
  }
  if (ms < 60_000) {
    throw new DeployInputError(
      `--refresh-interval "${refreshInterval}" is shorter than 1m; every node pulls every tag ` +
        "again each interval: use 1m or more, like 6h.",
    );
  }
  return { refreshInterval };
}

/** The pod's own identity from the downward API, for the Events (and the node's name). */
export function podIdentityEnv(): Json[] {
  const field = (fieldPath: string) => ({ valueFrom: { fieldRef: { fieldPath } } });
  return [
    { name: "NODE_NAME", ...field("spec.nodeName") },
    { name: "POD_NAME", ...field("metadata.name") },
    { name: "POD_NAMESPACE", ...field("metadata.namespace") },
    { name: "POD_UID", ...field("metadata.uid") },
  ];
}

/**
 * The main container: `keep` with the init container's flags (its first argument, `fetch`,
 * replaced), the same mounts and security context (it pulls through the same socket), and
 * memory for one cycle's child process on top of the idle parent.
 */
export function keepContainer(fetchContainer: Json, keep: KeepSettings): Json {
  const [, ...fetchFlags] = fetchContainer.args as string[];
  return {
    ...fetchContainer,
    name: "keep",
    args: ["keep", ...fetchFlags, "--refresh-interval", keep.refreshInterval],
    resources: {
      requests: { cpu: "5m", memory: "64Mi" },
      limits: { cpu: "500m", memory: "256Mi" },
    },
  };
}

function eventsRoleName(o: Instance): string {
  return `${o.name}-events`;
}

/** The Role (`create` and `patch` on `events` in the instance's namespace) and its binding. */
export function eventsAccess(o: Instance): KubernetesObject[] {
  return prefetchRole(o, eventsRoleName(o), [{
    apiGroups: [""],
    resources: ["events"],
    verbs: ["create", "patch"],
  }]);
}
