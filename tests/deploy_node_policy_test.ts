/**
 * The ValidatingAdmissionPolicy of node updates, evaluated: its CEL, as `deploy.ts` prints it, run
 * by a conformant CEL evaluator (`@marcbachmann/cel-js`) on AdmissionReview-shaped requests the
 * way the API server runs it (match conditions, then variables, then each validation in order).
 */
import assert from "node:assert/strict";
import { evaluate } from "@marcbachmann/cel-js";
import { renderManifests } from "../deploy.ts";

// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

const ACCOUNT = "system:serviceaccount:pf:my-images";
const LABEL = "image-prefetcher.stackrox.io/my-images";
const STARTUP = { key: "example.com/prefetching", value: "true", effect: "NoSchedule" };
const OTHER = { key: "node.kubernetes.io/not-ready", effect: "NoSchedule" };

const policy = renderManifests("my-images", {
  namespace: "pf",
  nodeUpdates: { labelNodes: true, startupTaint: "example.com/prefetching=true:NoSchedule" },
}).find((o) => o.kind === "ValidatingAdmissionPolicy") as Json;

function node(name: string, labels: Record<string, string>, taints: Json[]): Json {
  return { apiVersion: "v1", kind: "Node", metadata: { name, labels }, spec: { taints } };
}

/** An AdmissionReview's request: `user` (on `tokenNode`) changes `old` into `changed`. */
function review(
  old: Json,
  changed: Json,
  user = ACCOUNT,
  tokenNode: string | null = "node-a",
) {
  return {
    uid: crypto.randomUUID(),
    kind: { group: "", version: "v1", kind: "Node" },
    resource: { group: "", version: "v1", resource: "nodes" },
    name: changed.metadata.name,
    operation: "UPDATE",
    userInfo: {
      username: user,
      groups: ["system:serviceaccounts", "system:authenticated"],
      extra: tokenNode === null ? {} : { "authentication.kubernetes.io/node-name": [tokenNode] },
    },
    object: changed,
    oldObject: old,
  };
}

/** What the API server answers: allowed, or the message of the first failed validation. */
function admit(request: Json, against: Json = policy): "allowed" | string {
  const context: Json = { request, object: request.object, oldObject: request.oldObject };
  for (const condition of against.spec.matchConditions) {
    if (evaluate(condition.expression, context) !== true) return "allowed";
  }
  context.variables = {};
  for (const variable of against.spec.variables) {
    context.variables[variable.name] = evaluate(variable.expression, context);
  }
  for (const validation of against.spec.validations) {
    if (evaluate(validation.expression, context) !== true) return validation.message;
  }
  return "allowed";
}

const before = node("node-a", { "kubernetes.io/hostname": "node-a" }, [OTHER, STARTUP]);

Deno.test("the instance's own node: its label set, its startup taint removed", () => {
  const labelled = node("node-a", { "kubernetes.io/hostname": "node-a", [LABEL]: "succeeded" }, [
    OTHER,
    STARTUP,
  ]);
  assert.equal(admit(review(before, labelled)), "allowed");
  const relabelled = structuredClone(labelled);
  relabelled.metadata.labels[LABEL] = "failed";
  assert.equal(admit(review(labelled, relabelled)), "allowed");
  assert.equal(admit(review(before, node("node-a", before.metadata.labels, [OTHER]))), "allowed");
  // Both at once, as after a run.
  assert.equal(
    admit(review(before, node("node-a", labelled.metadata.labels, [OTHER]))),
    "allowed",
  );
});

Deno.test("another node, or a token that names none, is denied with why", () => {
  const other = node("node-b", { "kubernetes.io/hostname": "node-b" }, [OTHER, STARTUP]);
  const untainted = node("node-b", other.metadata.labels, [OTHER]);
  assert.match(admit(review(other, untainted)), /only the node its token names/);
  assert.match(
    admit(review(before, node("node-a", before.metadata.labels, [OTHER]), ACCOUNT, null)),
    /the token names none/,
  );
});

Deno.test("another label, another taint, an added NoExecute or the startup taint added: denied", () => {
  const cases: [Json, RegExp][] = [
    [
      node("node-a", { ...before.metadata.labels, "team": "gpu" }, [OTHER, STARTUP]),
      /only the node label/,
    ],
    [node("node-a", {}, [OTHER, STARTUP]), /only the node label/],
    [node("node-a", before.metadata.labels, [STARTUP]), /only remove the startup taint/],
    [
      node("node-a", before.metadata.labels, [OTHER, STARTUP, {
        key: "evict",
        effect: "NoExecute",
      }]),
      /only remove the startup taint/,
    ],
    [
      node("node-a", before.metadata.labels, [OTHER, { ...STARTUP, effect: "NoExecute" }]),
      /only remove the startup taint/,
    ],
  ];
  for (const [changed, message] of cases) assert.match(admit(review(before, changed)), message);
  // Adding the startup taint back is not removing it.
  const untainted = node("node-a", before.metadata.labels, [OTHER]);
  assert.match(admit(review(untainted, before)), /only remove the startup taint/);
  const annotated = structuredClone(before);
  annotated.metadata.annotations = { "example.com/x": "y" };
  assert.match(admit(review(before, annotated)), /may not change a node's annotations/);
  const finalized = structuredClone(before);
  finalized.metadata.finalizers = ["example.com/keep"];
  assert.match(admit(review(before, finalized)), /finalizers/);
  const cordoned = structuredClone(before);
  cordoned.spec.unschedulable = true;
  assert.match(admit(review(before, cordoned)), /nor cordon it/);
});

Deno.test("another user's change is not this policy's business", () => {
  const relabelled = node("node-b", { team: "gpu" }, [{ key: "evict", effect: "NoExecute" }]);
  const old = node("node-b", {}, []);
  assert.equal(
    admit(review(old, relabelled, "system:serviceaccount:pf:other", "node-a")),
    "allowed",
  );
  assert.equal(admit(review(old, relabelled, "kubernetes-admin", null)), "allowed");
});

Deno.test("without --label-nodes, no label may change; without a taint, no taint", () => {
  const only = (nodeUpdates: Json) =>
    renderManifests("my-images", { namespace: "pf", nodeUpdates }).find((o) =>
      o.kind === "ValidatingAdmissionPolicy"
    ) as Json;
  const labelsOnly = only({ labelNodes: true });
  const taintOnly = only({ startupTaint: "example.com/prefetching=true:NoSchedule" });
  const messages = (p: Json) => p.spec.validations.map((v: Json) => v.message).join("\n");
  assert.match(messages(labelsOnly), /may not change node taints/);
  assert.match(messages(taintOnly), /may not change node labels/);
  // And the CEL of each variant holds: labels only, or the taint only.
  const old = node("node-a", {}, [STARTUP]);
  const labelled = node("node-a", { [LABEL]: "succeeded" }, [STARTUP]);
  const untainted = node("node-a", {}, []);
  assert.equal(admit(review(old, labelled), labelsOnly), "allowed");
  assert.match(admit(review(old, untainted), labelsOnly), /may not change node taints/);
  assert.equal(admit(review(old, untainted), taintOnly), "allowed");
  assert.match(admit(review(old, labelled), taintOnly), /may not change node labels/);
  assert.equal(renderManifests("my-images").some((o) => o.kind.startsWith("Validating")), false);
});
