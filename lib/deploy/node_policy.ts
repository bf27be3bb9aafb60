/**
 * The ValidatingAdmissionPolicy (`admissionregistration.k8s.io/v1`, Kubernetes 1.30 and later)
 * and its binding that narrow the instance's `patch` on nodes, which RBAC cannot narrow (node
 * names are unknown when the manifest is written): a request of the instance's ServiceAccount may
 * change a Node only when it is the node named in its token
 * (`authentication.kubernetes.io/node-name`), only the instance's label, and only remove the
 * configured startup taint. Everything else is denied with a message that says why.
 *
 * @module
 */
import { DEFAULT_NODE_LABEL_PREFIX } from "./node_updates.ts";
import type { Instance, KubernetesObject } from "./instance.ts";

/** The user extra key of the node a bound token's pod runs on. */
export const NODE_NAME_EXTRA = "authentication.kubernetes.io/node-name";

/** One CEL rule of the policy and the message of its denial. */
export interface PolicyValidation {
  /** The CEL expression; true allows. */
  expression: string;
  /** Why a request is denied when it is false. */
  message: string;
}

/** A CEL string literal of `text`. */
function literal(text: string): string {
  return `'${text.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

/** The startup taint `key[=value]:effect` as its parts. */
function taintParts(taint: string): { key: string; value: string; effect: string } {
  const [keyValue, effect] = [
    taint.slice(0, taint.lastIndexOf(":")),
    taint.slice(taint.lastIndexOf(":") + 1),
  ];
  const eq = keyValue.indexOf("=");
  return eq === -1
    ? { key: keyValue, value: "", effect }
    : { key: keyValue.slice(0, eq), value: keyValue.slice(eq + 1), effect };
}

/** CEL: the field at `path` (absent reads as `empty`) is the same before and after. */
function unchanged(path: string, empty: string): string {
  const read = (o: string) => `(has(${o}.${path}) ? ${o}.${path} : ${empty})`;
  return `${read("object")} == ${read("oldObject")}`;
}

/** The ServiceAccount username of the instance's prefetch pods. */
export function prefetchUsername(o: Instance): string {
  return `system:serviceaccount:${o.namespace}:${o.name}`;
}

/** The variables the validations read: the labels and taints before and after, never absent. */
export function policyVariables(): { name: string; expression: string }[] {
  return [
    {
      name: "newLabels",
      expression: "has(object.metadata.labels) ? object.metadata.labels : {}",
    },
    {
      name: "oldLabels",
      expression: "has(oldObject.metadata.labels) ? oldObject.metadata.labels : {}",
    },
    { name: "newTaints", expression: "has(object.spec.taints) ? object.spec.taints : []" },
    { name: "oldTaints", expression: "has(oldObject.spec.taints) ? oldObject.spec.taints : []" },
  ];
}

/** The validations of instance `o`, in order; the first that fails gives the message. */
export function policyValidations(o: Instance): PolicyValidation[] {
  const labelKey = o.nodeUpdates.labelNodes
    ? `${o.nodeUpdates.labelPrefix ?? DEFAULT_NODE_LABEL_PREFIX}/${o.name}`
    : undefined;
  const taint = o.nodeUpdates.startupTaint === undefined
    ? undefined
    : taintParts(o.nodeUpdates.startupTaint);
  const extra = `request.userInfo.extra[${literal(NODE_NAME_EXTRA)}]`;
  const ours = (t: string) =>
    taint === undefined
      ? "false"
      : `(${t}.key == ${literal(taint.key)} && ${t}.effect == ${literal(taint.effect)} && ` +
        `(has(${t}.value) ? ${t}.value : '') == ${literal(taint.value)})`;
  const key = labelKey === undefined ? "" : `k == ${literal(labelKey)} || `;
  return [
    {
      expression: `${literal(NODE_NAME_EXTRA)} in request.userInfo.extra && ` +
        `size(${extra}) == 1 && ${extra}[0] == object.metadata.name`,
      message: `${prefetchUsername(o)} may change only the node its token names ` +
        `(${NODE_NAME_EXTRA}); this is another node, or the token names none (Kubernetes 1.30+ ` +
        "adds it to bound tokens)",
    },
    {
      expression: `variables.newLabels.all(k, ${key}(k in variables.oldLabels && ` +
        `variables.oldLabels[k] == variables.newLabels[k])) && ` +
        `variables.oldLabels.all(k, ${key}k in variables.newLabels)`,
      message: labelKey === undefined
        ? `${
          prefetchUsername(o)
        } may not change node labels (deploy.ts was run without --label-nodes)`
        : `${prefetchUsername(o)} may change only the node label ${labelKey}`,
    },
    {
      expression: `variables.newTaints.filter(t, !${ours("t")}) == ` +
        `variables.oldTaints.filter(t, !${ours("t")}) && ` +
        `(variables.oldTaints.exists(t, ${ours("t")}) || !variables.newTaints.exists(t, ${
          ours("t")
        }))`,
      message: taint === undefined
        ? `${prefetchUsername(o)} may not change node taints (deploy.ts was run without ` +
          "--remove-startup-taint)"
        : `${
          prefetchUsername(o)
        } may only remove the startup taint ${o.nodeUpdates.startupTaint}; ` +
          "it may not add, change or remove any other taint",
    },
    {
      expression: [
        unchanged("metadata.annotations", "{}"),
        unchanged("metadata.finalizers", "[]"),
        unchanged("metadata.ownerReferences", "[]"),
        "(has(object.spec.unschedulable) && object.spec.unschedulable) == " +
        "(has(oldObject.spec.unschedulable) && oldObject.spec.unschedulable)",
      ].join(" && "),
      message: `${prefetchUsername(o)} may not change a node's annotations, finalizers or ` +
        "owners, nor cordon it",
    },
  ];
}

/** The name of the policy and its binding (cluster-scoped: the namespace is in it). */
export function policyName(o: Instance): string {
  return `image-prefetcher.${o.namespace}.${o.name}`;
}

/** The policy and its binding, for an instance whose `fetch` patches nodes. */
export function nodePolicyObjects(o: Instance, labels: Record<string, string>): KubernetesObject[] {
  const name = policyName(o);
  return [
    {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "ValidatingAdmissionPolicy",
      metadata: { name, labels },
      spec: {
        failurePolicy: "Fail",
        matchConstraints: {
          resourceRules: [{
            apiGroups: [""],
            apiVersions: ["v1"],
            operations: ["UPDATE"],
            resources: ["nodes"],
          }],
        },
        matchConditions: [{
          name: "instance-service-account",
          expression: `request.userInfo.username == ${literal(prefetchUsername(o))}`,
        }],
        variables: policyVariables(),
        validations: policyValidations(o).map((v) => ({ ...v, reason: "Forbidden" })),
      },
    },
    {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "ValidatingAdmissionPolicyBinding",
      metadata: { name, labels },
      spec: { policyName: name, validationActions: ["Deny"] },
    },
  ];
}
