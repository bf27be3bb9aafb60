/**
 * The ServiceAccounts, Roles and bindings of the prefetch pods: the privileged SCC on OpenShift,
 * and the node access of `fetch`'s label and taint updates.
 *
 * @module
 */
import { nodeAccessObjects } from "./node_updates.ts";
import { type Instance, type KubernetesObject, metadata } from "./instance.ts";
import { OCP_PRIVILEGED_SCC } from "./security_contexts.ts";

function sccRoleName(o: Instance): string {
  return `${o.name}-use-${OCP_PRIVILEGED_SCC}-scc`;
}

/** The ServiceAccount, Role and RoleBinding that let the prefetch pods use the privileged SCC. */
export function openShiftAccess(o: Instance): KubernetesObject[] {
  return [
    {
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: metadata(o, o.name, "prefetch"),
      automountServiceAccountToken: false,
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: metadata(o, sccRoleName(o), "prefetch"),
      rules: [{
        apiGroups: ["security.openshift.io"],
        resources: ["securitycontextconstraints"],
        resourceNames: [OCP_PRIVILEGED_SCC],
        verbs: ["use"],
      }],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: metadata(o, sccRoleName(o), "prefetch"),
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: sccRoleName(o) },
      subjects: [{ kind: "ServiceAccount", name: o.name, namespace: o.namespace }],
    },
  ];
}

/**
 * The ServiceAccount (unless ocp made it), whose projected token is the node's identity, and the
 * node RBAC of `fetch`'s API calls when it makes any.
 */
export function nodeAccess(o: Instance): KubernetesObject[] {
  return [
    ...(o.flavor === "ocp" ? [] : [{
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: metadata(o, o.name, "prefetch"),
      automountServiceAccountToken: false,
    }]),
    ...(!o.nodeApi ? [] : nodeAccessObjects(
      o.name,
      o.namespace,
      o.nodeUpdates,
      (n) => metadata(o, n, "prefetch"),
    ) as KubernetesObject[]),
  ];
}
