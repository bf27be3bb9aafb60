/**
 * `deploy --label-nodes` and `--remove-startup-taint`: the `fetch` flags, and the RBAC and token
 * they need: a ClusterRole allowing exactly the verbs on `nodes` that `fetch` uses (`patch` for
 * the label; `get` and `patch` for the taint), bound to the DaemonSet's ServiceAccount, and a
 * service account token mounted into the init container only.
 *
 * @module
 */
import { DeployInputError } from "./deploy_error.ts";
import { isLabelKey } from "./k8s_names.ts";

/**
 * The default label prefix: the original tool's (`image-prefetcher.stackrox.io/<instance>`), so
 * `nodeSelector`s written for it keep working after a migration.
 */
export const DEFAULT_NODE_LABEL_PREFIX = "image-prefetcher.stackrox.io";

/** Where `fetch` finds the token and CA (the kubelet's usual path, mounted explicitly). */
export const SERVICE_ACCOUNT_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount";

/** What `deploy` was asked for. */
export interface NodeUpdateOptions {
  /** Label each node `<prefix>/<instance>=succeeded|failed` after its run. */
  labelNodes?: boolean;
  /** The label prefix. @default {DEFAULT_NODE_LABEL_PREFIX} */
  labelPrefix?: string;
  /** The startup taint to remove, `key[=value]:effect`. */
  startupTaint?: string;
}

/** The verbs on `nodes` the ClusterRole grants for `options`: exactly what `fetch` calls. */
export function nodeVerbs(options: NodeUpdateOptions): string[] {
  const verbs = new Set<string>();
  if (options.labelNodes) verbs.add("patch");
  if (options.startupTaint !== undefined) ["get", "patch"].forEach((v) => verbs.add(v));
  return [...verbs].sort();
}

/** The `fetch` arguments for `options` and instance `name`. */
export function nodeUpdateArgs(name: string, options: NodeUpdateOptions): string[] {
  const prefix = options.labelPrefix ?? DEFAULT_NODE_LABEL_PREFIX;
  return [
    ...(options.labelNodes ? ["--node-label", `${prefix}/${name}`] : []),
    ...(options.startupTaint === undefined ? [] : ["--remove-startup-taint", options.startupTaint]),
  ];
}

/**
 * Checks `options` (the taint's syntax is checked again by `fetch`'s own parser in a test).
 *
 * @throws {DeployInputError} Naming the flag and the fix.
 */
export function validateNodeUpdates(name: string, options: NodeUpdateOptions): void {
  if (options.labelPrefix !== undefined && !options.labelNodes) {
    throw new DeployInputError(
      "--node-label-prefix only applies with --label-nodes; add --label-nodes or leave it out.",
    );
  }
  const prefix = options.labelPrefix ?? DEFAULT_NODE_LABEL_PREFIX;
  if (options.labelNodes && !isLabelKey(`${prefix}/${name}`)) {
    throw new DeployInputError(
      `--node-label-prefix "${prefix}" does not make a valid label key with the name; use a DNS ` +
        "subdomain like image-prefetcher.example.com.",
    );
  }
  const taint = options.startupTaint;
  if (
    taint !== undefined &&
    !/^[A-Za-z0-9./_-]+(=[A-Za-z0-9._-]*)?:(NoSchedule|PreferNoSchedule|NoExecute)$/.test(taint)
  ) {
    throw new DeployInputError(
      `--remove-startup-taint "${taint}" must be key[=value]:effect with effect NoSchedule, ` +
        "PreferNoSchedule or NoExecute, like example.com/prefetching=true:NoSchedule.",
    );
  }
}

/** The ClusterRole and ClusterRoleBinding for instance `name` in `namespace`. */
export function nodeAccessObjects(
  name: string,
  namespace: string,
  options: NodeUpdateOptions,
  metadata: (objectName: string) => Record<string, unknown>,
): Array<Record<string, unknown> & { apiVersion: string; kind: string }> {
  // Cluster-scoped, so the namespace is in the name: two instances never share a role.
  const roleName = `image-prefetcher:${namespace}:${name}`;
  const { namespace: _, ...clusterMetadata } = metadata(roleName) as { namespace?: string };
  return [
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: clusterMetadata,
      // Node names are unknown when the manifest is written, so the rule cannot name them.
      rules: [{ apiGroups: [""], resources: ["nodes"], verbs: nodeVerbs(options) }],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: clusterMetadata,
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: roleName },
      subjects: [{ kind: "ServiceAccount", name, namespace }],
    },
  ];
}

/** The projected token volume (token, CA, namespace), mounted into the init container only. */
export function serviceAccountTokenVolume(): {
  volume: Record<string, unknown>;
  mount: Record<string, unknown>;
} {
  return {
    volume: {
      name: "kube-api-access",
      projected: {
        defaultMode: 0o444,
        sources: [
          { serviceAccountToken: { path: "token", expirationSeconds: 3607 } },
          { configMap: { name: "kube-root-ca.crt", items: [{ key: "ca.crt", path: "ca.crt" }] } },
        ],
      },
    },
    mount: { name: "kube-api-access", mountPath: SERVICE_ACCOUNT_MOUNT, readOnly: true },
  };
}
