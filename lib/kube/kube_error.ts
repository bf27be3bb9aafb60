/**
 * What the Kubernetes API answered when it did not do what was asked, as a value with the
 * status, the API's reason and message, and, for 403, the RBAC rule the ServiceAccount lacks.
 *
 * @module
 */

/** One API call: the verb RBAC checks and the resource it is on. */
export interface ApiCall {
  /** The RBAC verb: `get`, `patch`, … */
  verb: string;
  /** The resource, like `nodes`. */
  resource: string;
  /** The object's name (empty for a `create`). */
  name: string;
  /** The API group, when not the core group. */
  group?: string;
  /** The request path, when not `/api/v1/<resource>/<name>`. */
  path?: string;
  /** The namespace of a namespaced resource, like `events`. */
  namespace?: string;
}

/** A call the API server refused, or could not be made. */
export class KubeApiError extends Error {
  /** The HTTP status; 0 when no answer came. */
  readonly status: number;
  /** The API's `reason` (`Conflict`, `Forbidden`, …), when it gave one. */
  readonly reason?: string;

  /** Creates the error for `call` with the server's answer. */
  constructor(call: ApiCall, status: number, detail: string, reason?: string) {
    super(describe(call, status, detail));
    this.name = "KubeApiError";
    this.status = status;
    this.reason = reason;
  }
}

function describe(call: ApiCall, status: number, detail: string): string {
  const where = call.namespace ? ` in namespace ${call.namespace}` : "";
  const what = call.name
    ? `${call.verb} ${call.resource}/${call.name}${where}`
    : `${call.verb} ${call.resource}${where}`;
  if (status === 403) {
    return `${what}: the ServiceAccount lacks "${call.verb}" on "${call.resource}" (${detail}); ` +
      `grant it with a ClusterRole rule {apiGroups: ["${
        call.group ?? ""
      }"], resources: ["${call.resource}"], ` +
      `verbs: ["${call.verb}"]} bound to the pod's ServiceAccount (deploy.ts writes it).`;
  }
  if (status === 401) {
    return `${what}: the API server did not accept the ServiceAccount token (${detail}); ` +
      "mount a service account token into the container (deploy.ts does).";
  }
  if (status === 0) return `${what}: no answer from the API server (${detail})`;
  return `${what}: HTTP ${status} (${detail})`;
}

/** Whether trying the same call again may work: no answer, 409, 429 or a 5xx. */
export function isRetryable(error: unknown): boolean {
  if (!(error instanceof KubeApiError)) return false;
  return error.status === 0 || error.status === 409 || error.status === 429 ||
    error.status >= 500;
}
