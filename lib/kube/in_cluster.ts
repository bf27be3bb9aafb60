/**
 * Where a pod finds the Kubernetes API: `KUBERNETES_SERVICE_HOST` and `_PORT`, and the service
 * account's token and CA in the projected volume at `/var/run/secrets/kubernetes.io/serviceaccount`.
 *
 * @module
 */

/** The directory the kubelet mounts a pod's service account token, CA and namespace into. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** How to reach and authenticate to the API server. */
export interface InClusterConfig {
  /** `https://host:port`. */
  server: string;
  /** File with the bearer token; read again on every request, as the kubelet rotates it. */
  tokenFile: string;
  /** File with the PEM CA certificates the server's certificate must chain to. */
  caFile: string;
}

/** The pod is not set up to reach the API; the message says what to add. */
export class InClusterConfigError extends Error {
  /** Creates the error with a sentence a user can act on. */
  constructor(message: string) {
    super(message);
    this.name = "InClusterConfigError";
  }
}

/**
 * Reads the in-cluster settings from `env` (default the process's environment).
 *
 * @example Usage
 * ```ts
 * import { inClusterConfig } from "./in_cluster.ts";
 *
 * const config = inClusterConfig({ KUBERNETES_SERVICE_HOST: "10.0.0.1", KUBERNETES_SERVICE_PORT: "443" });
 * config.server; // "https://10.0.0.1:443"
 * ```
 *
 * @throws {InClusterConfigError} When the service host or port is missing or malformed.
 */
export function inClusterConfig(
  env: Record<string, string | undefined> = Deno.env.toObject(),
  dir = SERVICE_ACCOUNT_DIR,
): InClusterConfig {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port || !/^\d{1,5}$/.test(port)) {
    throw new InClusterConfigError(
      "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set (or not a host and a " +
        "port): node labels and taints need fetch to run in a pod of the cluster.",
    );
  }
  return {
    server: `https://${host.includes(":") ? `[${host}]` : host}:${port}`,
    tokenFile: `${dir}/token`,
    caFile: `${dir}/ca.crt`,
  };
}
