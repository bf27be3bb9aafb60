/**
 * `deploy.ts --keep`: schema-valid manifests whose main container runs `keep` with the init
 * container's flags (as the real parser reads them), the pod's identity for the Events, and a
 * Role that may only create and patch events in the instance's namespace.
 */
import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { parseKeepArgs } from "../cmd/keep_cycle.ts";
import { deploy, DeployInputError, type KubernetesObject, renderManifests } from "../deploy.ts";
import { validationErrors } from "../testing/deploy_schema.ts";

// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

function objectsOf(args: string[]): KubernetesObject[] {
  return parseAllDocuments(deploy(args)).map((d) => d.toJS() as KubernetesObject);
}

function podSpec(objects: KubernetesObject[]): Json {
  return (objects.find((o) => o.kind === "DaemonSet") as Json).spec.template.spec;
}

const KEEP_VARIANTS = [
  ["my-images", "--keep"],
  ["my-images", "--keep", "--pin", "--refresh-interval", "15m", "--namespace", "prefetch"],
  ["my-images", "--keep", "--label-nodes", "--collect-metrics", "--waves"],
  ["my-images", "--keep", "--collect-metrics"],
  ["my-images", "--keep", "--k8s-flavor", "ocp", "--secret", "regcred"],
];

Deno.test("--keep manifests pass the Kubernetes API schemas strictly", async () => {
  const all = KEEP_VARIANTS.flatMap(objectsOf);
  assert.deepEqual(await validationErrors(all), []);
});

Deno.test("--keep: the main container is keep with the init container's flags", () => {
  for (const args of KEEP_VARIANTS) {
    const spec = podSpec(objectsOf(args));
    const [init] = spec.initContainers;
    const [main] = spec.containers;
    assert.equal(main.name, "keep", args.join(" "));
    assert.deepEqual(main.args.slice(0, init.args.length), ["keep", ...init.args.slice(1)]);
    const parsed = parseKeepArgs(main.args.slice(1));
    assert.equal(parsed.kind, "run");
    if (parsed.kind !== "run") continue;
    assert.equal(parsed.refreshIntervalMs, args.includes("15m") ? 15 * 60_000 : 6 * 3_600_000);
    assert.equal(parsed.fetch.config.pin, args.includes("--pin"));
    if (args.includes("--pin")) assert.equal(parsed.fetch.config.pinOwner, "my-images");
    assert.deepEqual(main.volumeMounts, init.volumeMounts, "keep reads what fetch reads");
    assert.deepEqual(main.securityContext, init.securityContext, "and reaches the same socket");
    for (const container of [init, main]) {
      assert.deepEqual(
        container.env.map((e: Json) => [e.name, e.valueFrom.fieldRef.fieldPath]),
        [
          ["NODE_NAME", "spec.nodeName"],
          ["POD_NAME", "metadata.name"],
          ["POD_NAMESPACE", "metadata.namespace"],
          ["POD_UID", "metadata.uid"],
        ],
      );
      assert.ok(container.volumeMounts.some((m: Json) => m.name === "kube-api-access"));
    }
    assert.equal(spec.serviceAccountName, "my-images");
  }
});

Deno.test("--keep's RBAC: create and patch on events in the instance's namespace, nothing more", () => {
  const objects = renderManifests("my-images", { keep: true, namespace: "prefetch" });
  const roles = objects.filter((o) => o.kind === "Role") as Json[];
  assert.deepEqual(roles.map((r) => [r.metadata.namespace, r.rules]), [
    ["prefetch", [{ apiGroups: [""], resources: ["events"], verbs: ["create", "patch"] }]],
  ]);
  assert.equal(objects.filter((o) => o.kind === "ClusterRole").length, 0);
  const binding = objects.find((o) => o.kind === "RoleBinding") as Json;
  assert.deepEqual(binding.subjects, [
    { kind: "ServiceAccount", name: "my-images", namespace: "prefetch" },
  ]);
  assert.equal(objects.filter((o) => o.kind === "ServiceAccount").length, 1);
  const withoutKeep = renderManifests("my-images", {});
  assert.equal(podSpec(withoutKeep).containers[0].name, "sleep");
});

Deno.test("every variant's objects are named once per kind: one ServiceAccount for the pods", () => {
  for (const args of KEEP_VARIANTS) {
    const keys = objectsOf(args).map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`);
    assert.deepEqual(keys.filter((key, i) => keys.indexOf(key) !== i), [], args.join(" "));
  }
});

Deno.test("--keep's bad input names the fix", () => {
  const cases: [string[], RegExp][] = [
    [["my-images", "--refresh-interval", "1h"], /--refresh-interval tunes --keep: add --keep/],
    [["my-images", "--keep", "--refresh-interval", "30s"], /shorter than 1m/],
    [["my-images", "--keep", "--refresh-interval", "soon"], /--refresh-interval/],
  ];
  for (const [args, message] of cases) {
    assert.throws(
      () => deploy(args),
      (e) => e instanceof DeployInputError && message.test(e.message),
    );
  }
});
