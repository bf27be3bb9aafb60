/**
 * The ServiceAccount, Roles and bindings of the prefetch pods: the privileged SCC on OpenShift,
 * and the node access of `fetch`'s label and taint updates.
 *
 * @module
 */
import { nodeAccessObjects } from "./node_updates.ts";
import {
  hasPrefetchServiceAccount,
  type Instance,
  type Json,
  type KubernetesObject,
  metadata,
} from "./instance.ts";
import { OCP_PRIVILEGED_SCC } from "./security_contexts.ts";

function sccRoleName(o: Instance): string {
  return `${o.name}-use-${OCP_PRIVILEGED_SCC}-scc`;
}

/**
 * The prefetch pods' ServiceAccount, when they have one ({@linkcode hasPrefetchServiceAccount});
 * its token is mounted only into the containers that use it.
 */
export function prefetchServiceAccount(o: Instance): KubernetesObject[] {
  if (!hasPrefetchServiceAccount(o)) return [];
  return [{
    apiVersion: "v1",
    kind: "ServiceAccount",
    metadata: metadata(o, o.name, "prefetch"),
    automountServiceAccountToken: false,
  }];
}

/** A Role named `roleName` in the instance's namespace, bound to the prefetch pods' account. */
export function prefetchRole(o: Instance, roleName: string, rules: Json[]): KubernetesObject[] {
  return [
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: metadata(o, roleName, "prefetch"),
      rules,
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: metadata(o, roleName, "prefetch"),
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: roleName },
      subjects: [{ kind: "ServiceAccount", name: o.name, namespace: o.namespace }],
    },
  ];
}

/** The Role and RoleBinding that let the prefetch pods use the privileged SCC. */
export function openShiftAccess(o: Instance): KubernetesObject[] {
  return prefetchRole(o, sccRoleName(o), [{
    apiGroups: ["security.openshift.io"],
    resources: ["securitycontextconstraints"],
    resourceNames: [OCP_PRIVILEGED_SCC],
    verbs: ["use"],
  }]);
}

/** The node RBAC of `fetch`'s API calls, when it makes any. */
export function nodeAccess(o: Instance): KubernetesObject[] {
  if (!o.nodeApi) return [];
  return nodeAccessObjects(
    o.name,
    o.namespace,
    o.nodeUpdates,
    (n) => metadata(o, n, "prefetch"),
  ) as KubernetesObject[];
}
