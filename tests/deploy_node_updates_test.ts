/**
 * `deploy.ts --label-nodes` and `--remove-startup-taint`: the manifests are valid, fetch's own
 * parser reads the flags, the token reaches the init container only, and the ClusterRole grants
 * exactly the calls the code makes: each variant's fetch settings are run against the contract
 * API server with only the manifest's verbs granted, through every way a run can end.
 */
import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { parseFetchArgs } from "../cmd/fetch.ts";
import { deploy, DeployInputError, type KubernetesObject } from "../deploy.ts";
import { Logger } from "../lib/core/log.ts";
import { updateNodeAfterRun } from "../lib/kube/node_after_run.ts";
import { startApiFixture, testNode } from "../testing/kube/api_fixture.ts";
import { validationErrors } from "../testing/deploy_schema.ts";

// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

const TAINT = "example.com/prefetching=true:NoSchedule";
const VARIANTS: string[][] = [
  ["--label-nodes"],
  ["--label-nodes", "--node-label-prefix", "prefetch.example.com"],
  ["--remove-startup-taint", TAINT],
  ["--label-nodes", "--remove-startup-taint", TAINT],
  ["--label-nodes", "--remove-startup-taint", TAINT, "--k8s-flavor", "ocp"],
];

function render(args: string[]): KubernetesObject[] {
  return parseAllDocuments(deploy(["my-images", "--namespace", "pf", ...args])).map((d) =>
    d.toJS() as KubernetesObject
  );
}

function only(objects: KubernetesObject[], kind: string): Json {
  const found = objects.filter((o) => o.kind === kind);
  assert.equal(found.length, 1, kind);
  return found[0];
}

function fetchSettings(objects: KubernetesObject[]) {
  const pod = only(objects, "DaemonSet").spec.template.spec;
  const parsed = parseFetchArgs(pod.initContainers[0].args.slice(1), {
    nodeName: "node-a",
    hostname: () => "h",
  });
  assert.equal(parsed.kind, "run");
  return { pod, config: parsed.kind === "run" ? parsed.config : assert.fail() };
}

Deno.test("node labels and startup taints: valid manifests, flags fetch reads, token for fetch only", async () => {
  const all: KubernetesObject[] = [];
  for (const args of VARIANTS) {
    const objects = render(args);
    all.push(...objects);
    const { pod, config } = fetchSettings(objects);
    const label = args.includes("--label-nodes");
    const prefix = args.includes("--node-label-prefix")
      ? "prefetch.example.com"
      : "image-prefetcher.stackrox.io";
    assert.equal(config.nodeUpdates?.labelKey, label ? `${prefix}/my-images` : undefined);
    assert.deepEqual(
      config.nodeUpdates?.startupTaint,
      args.includes(TAINT)
        ? { key: "example.com/prefetching", value: "true", effect: "NoSchedule" }
        : undefined,
    );
    assert.equal(
      config.nodeUpdates?.serviceAccountDir,
      "/var/run/secrets/kubernetes.io/serviceaccount",
    );
    assert.equal(pod.serviceAccountName, "my-images");
    assert.equal(pod.automountServiceAccountToken, false);
    const tokenMounts = (c: Json) =>
      (c.volumeMounts ?? []).filter((m: Json) => m.name === "kube-api-access");
    assert.equal(tokenMounts(pod.initContainers[0]).length, 1);
    assert.equal(tokenMounts(pod.initContainers[0])[0].readOnly, true);
    assert.equal(tokenMounts(pod.containers[0]).length, 0, "sleep gets no token");
    assert.equal(only(objects, "ServiceAccount").metadata.name, "my-images");
    const binding = only(objects, "ClusterRoleBinding");
    assert.deepEqual(binding.subjects, [{
      kind: "ServiceAccount",
      name: "my-images",
      namespace: "pf",
    }]);
    assert.equal(binding.roleRef.name, only(objects, "ClusterRole").metadata.name);
  }
  assert.deepEqual(await validationErrors(all), []);
  // Without the flags, no RBAC and no token.
  const plain = render([]);
  assert.ok(!plain.some((o) => o.kind.startsWith("ClusterRole")));
  assert.ok(!JSON.stringify(plain).includes("kube-api-access"));
});

/** Every way a run can end, as updateNodeAfterRun sees it. */
const ENDS = [true, false].flatMap((allOnNode) =>
  [true, false].flatMap((strict) =>
    [true, false].map((interrupted) => ({ allOnNode, strict, interrupted }))
  )
);

Deno.test("the ClusterRole grants exactly the calls fetch makes on nodes", async () => {
  for (const args of VARIANTS) {
    const objects = render(args);
    const role = only(objects, "ClusterRole");
    assert.equal(role.rules.length, 1);
    const [rule] = role.rules;
    assert.deepEqual([rule.apiGroups, rule.resources, rule.resourceNames], [
      [""],
      ["nodes"],
      undefined,
    ]);
    const { config } = fetchSettings(objects);
    const used = new Set<string>();
    for (const end of ENDS) {
      const taint = { key: "example.com/prefetching", value: "true", effect: "NoSchedule" };
      await using api = await startApiFixture({
        nodes: [testNode("node-a", [taint])],
        grants: rule.verbs,
      });
      const lines: Json[] = [];
      const result = await updateNodeAfterRun(
        { ...config.nodeUpdates, serviceAccountDir: api.serviceAccountDir },
        { node: "node-a", ...end },
        {
          logger: new Logger({ format: "json", write: (l) => lines.push(JSON.parse(l)) }),
          clock: { now: () => 0, wallNow: () => 0, sleep: () => Promise.resolve() },
          env: api.env,
        },
      );
      const what = `${args.join(" ")} ${JSON.stringify(end)}`;
      assert.deepEqual(result, { taintRemovalFailed: false }, what);
      assert.ok(lines.every((l) => l.level !== "error"), `${what}: ${JSON.stringify(lines)}`);
      for (const request of api.server.requests) {
        assert.ok(
          request.status < 400,
          `${what}: ${request.method} ${request.path} ${request.status}`,
        );
        assert.equal(request.path, "/api/v1/nodes/node-a");
        used.add(request.verb);
      }
    }
    // Nothing granted goes unused, nothing used is missing (it would have been a 403).
    assert.deepEqual([...used].sort(), rule.verbs, args.join(" "));
  }
});

Deno.test("bad node-update flags are refused with the fix", () => {
  const cases: Array<[string[], RegExp]> = [
    [["--node-label-prefix", "x.example.com"], /only applies with --label-nodes/],
    [["--label-nodes", "--node-label-prefix", "Not A Prefix"], /does not make a valid label key/],
    [["--remove-startup-taint", "example.com/prefetching"], /must be key\[=value\]:effect/],
  ];
  for (const [args, message] of cases) {
    assert.throws(() => deploy(["my-images", ...args]), (error: Error) => {
      assert.ok(error instanceof DeployInputError);
      assert.match(error.message, message);
      return true;
    });
  }
});
