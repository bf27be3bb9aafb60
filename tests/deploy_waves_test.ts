/**
 * `deploy.ts --waves` and the token every instance with a metrics server gets: schema-valid
 * manifests, arguments the real parsers accept, the token Secret mounted into both sides, and a
 * NetworkPolicy that lets only the instance's prefetch pods reach the gRPC port.
 */
import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { parseFetchArgs } from "../cmd/fetch.ts";
import { parseAggregateMetricsArgs } from "../cmd/aggregate_metrics.ts";
import { deploy, DeployInputError, type KubernetesObject, renderManifests } from "../deploy.ts";
import { TOKEN_FILE } from "../lib/deploy/manifests.ts";
import { validationErrors } from "../testing/deploy_schema.ts";

// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

function find(objects: KubernetesObject[], kind: string): Json {
  const found = objects.filter((o) => o.kind === kind);
  assert.equal(found.length, 1, `expected one ${kind}, got ${found.length}`);
  return found[0];
}

const WAVES = ["--waves", "--first-wave", "2", "--fanout", "50", "--max-nodes-pulling=3"];

Deno.test("--waves manifests pass the Kubernetes API schemas strictly", async () => {
  const all: KubernetesObject[] = [];
  for (const flavor of ["vanilla", "ocp"]) {
    for (const extra of [["--waves"], WAVES, ["--collect-metrics", ...WAVES]]) {
      const text = deploy(["my-images", "--k8s-flavor", flavor, ...extra]);
      all.push(...parseAllDocuments(text).map((d) => d.toJS() as KubernetesObject));
    }
  }
  assert.deepEqual(await validationErrors(all), []);
});

Deno.test("--waves brings the server and tells both sides, as their real parsers read it", () => {
  const objects = renderManifests("my-images", {
    namespace: "ns",
    waves: true,
    firstWave: 2,
    fanout: 50,
    maxNodesPulling: 3,
  });
  const server = find(objects, "Deployment").spec.template.spec.containers[0];
  const parsed = parseAggregateMetricsArgs(server.args.slice(1));
  assert.ok(parsed.kind === "run");
  assert.deepEqual(parsed.config.waves, {
    firstWave: 2,
    fanout: 50,
    maxNodesPulling: 3,
    leaseMs: 30_000,
  });
  assert.equal(parsed.config.tokenFile, undefined, "no shared token");
  assert.deepEqual(parsed.kubernetesAuth, {
    serviceAccount: { namespace: "ns", name: "my-images" },
    audience: "image-prefetcher:ns:my-images",
    serviceAccountDir: "/var/run/secrets/kubernetes.io/serviceaccount",
  });
  assert.equal(parsed.config.localHttpPort, 8081);
  const init = find(objects, "DaemonSet").spec.template.spec.initContainers[0];
  const fetch = parseFetchArgs(init.args.slice(1), { nodeName: "n", hostname: () => "h" });
  assert.ok(fetch.kind === "run");
  assert.deepEqual(fetch.waves, { maxWaitMs: 30_000 });
  assert.equal(fetch.metricsEndpoint, "my-images-metrics.ns.svc:8443");
  assert.equal(fetch.metricsTokenFile, TOKEN_FILE);
  const defaults = renderManifests("my-images", { waves: true });
  const defaultArgs = find(defaults, "Deployment").spec.template.spec.containers[0].args;
  const parsedDefaults = parseAggregateMetricsArgs(defaultArgs.slice(1));
  assert.ok(parsedDefaults.kind === "run");
  assert.deepEqual(parsedDefaults.config.waves, {
    firstWave: 1,
    fanout: 4,
    maxNodesPulling: 0,
    leaseMs: 30_000,
  });
  const plain = renderManifests("my-images", { collectMetrics: true });
  const plainArgs = find(plain, "Deployment").spec.template.spec.containers[0].args;
  assert.ok(!plainArgs.includes("--waves"));
  const plainInit = find(plain, "DaemonSet").spec.template.spec.initContainers[0].args;
  assert.ok(!plainInit.includes("--waves"));
  assert.ok(plainInit.includes("--metrics-token-file"), "--collect-metrics gets the token too");
});

Deno.test("nodes send a projected token of the instance's audience; the server reviews it", () => {
  const objects = renderManifests("my-images", { namespace: "ns", waves: true });
  assert.ok(!objects.some((o) => o.kind === "Secret"), "no long-lived token Secret");
  const pod = find(objects, "DaemonSet").spec.template.spec;
  assert.equal(pod.serviceAccountName, "my-images");
  assert.equal(pod.automountServiceAccountToken, false);
  const mount = pod.initContainers[0].volumeMounts.find((m: Json) =>
    TOKEN_FILE.startsWith(m.mountPath + "/")
  );
  assert.equal(mount.readOnly, true);
  assert.equal(pod.containers[0].volumeMounts, undefined, "sleep gets no token");
  const volume = pod.volumes.find((v: Json) => v.name === mount.name);
  assert.deepEqual(volume.projected.sources, [{
    serviceAccountToken: {
      audience: "image-prefetcher:ns:my-images",
      expirationSeconds: 600,
      path: TOKEN_FILE.split("/").at(-1),
    },
  }]);
  // The server runs as its own ServiceAccount, which may review tokens and read pods, no more.
  const server = find(objects, "Deployment").spec.template.spec;
  assert.equal(server.serviceAccountName, "my-images-metrics");
  const accounts = objects.filter((o) => o.kind === "ServiceAccount").map((o) => o.metadata.name);
  assert.deepEqual(accounts.sort(), ["my-images", "my-images-metrics"]);
  const clusterRole = objects.find((o) =>
    o.kind === "ClusterRole" && o.metadata.name.endsWith("-metrics")
  ) as Json;
  assert.deepEqual(clusterRole.rules.flatMap((r: Json) => r.resources), [
    "tokenreviews",
    "subjectaccessreviews",
  ]);
  assert.deepEqual(clusterRole.rules.flatMap((r: Json) => r.verbs), ["create", "create"]);
  assert.deepEqual(find(objects, "Role").rules, [
    { apiGroups: [""], resources: ["pods"], verbs: ["get"] },
  ]);
});

Deno.test("only the instance's prefetch pods reach the gRPC port; HTTP stays open", () => {
  const objects = renderManifests("my-images", { waves: true });
  const policy = find(objects, "NetworkPolicy");
  const serverLabels = find(objects, "Deployment").spec.template.metadata.labels;
  const nodeLabels = find(objects, "DaemonSet").spec.template.metadata.labels;
  for (const [key, value] of Object.entries(policy.spec.podSelector.matchLabels)) {
    assert.equal(serverLabels[key], value);
  }
  assert.deepEqual(policy.spec.policyTypes, ["Ingress"]);
  const grpcRules = policy.spec.ingress.filter((r: Json) =>
    r.ports.some((p: Json) => p.port === 8443)
  );
  assert.equal(grpcRules.length, 1);
  assert.equal(grpcRules[0].from.length, 1);
  const from = grpcRules[0].from[0];
  assert.equal(from.namespaceSelector, undefined, "only this namespace");
  for (const [key, value] of Object.entries(from.podSelector.matchLabels)) {
    assert.equal(nodeLabels[key], value);
  }
  // Another instance's prefetch pods do not match.
  const other = renderManifests("other-images", { waves: true });
  const otherLabels = find(other, "DaemonSet").spec.template.metadata.labels;
  assert.ok(
    Object.entries(from.podSelector.matchLabels).some(([k, v]) => otherLabels[k] !== v),
  );
  const httpRule = policy.spec.ingress.find((r: Json) =>
    r.ports.some((p: Json) => p.port === 8080)
  );
  assert.equal(httpRule.from, undefined, "the HTTP port is open (reads need the token)");
});

Deno.test("with hostNetwork prefetch pods (cloud credential providers), no NetworkPolicy", () => {
  for (const kind of ["gke", "eks", "aks"] as const) {
    const objects = renderManifests("my-images", { waves: true, credentialProvider: { kind } });
    assert.equal(find(objects, "DaemonSet").spec.template.spec.hostNetwork, true);
    // A podSelector never matches traffic from node addresses: the policy would drop every
    // submit. The gRPC calls are authenticated by their tokens instead.
    assert.ok(!objects.some((o) => o.kind === "NetworkPolicy"), kind);
  }
});

Deno.test("waves flags without --waves, or with bad numbers, are one sentence with the fix", () => {
  for (
    const [args, message] of [
      [["my-images", "--fanout", "3"], /--fanout tunes --waves: add --waves/],
      [["my-images", "--collect-metrics", "--first-wave", "2"], /--first-wave tunes --waves/],
      [["my-images", "--waves", "--fanout", "0"], /--fanout must be a whole number from 1/],
      [["my-images", "--waves", "--max-nodes-pulling", "many"], /--max-nodes-pulling must be/],
    ] as const
  ) {
    assert.throws(() => deploy([...args]), (e: Error) => {
      assert.ok(e instanceof DeployInputError, String(e));
      assert.match(e.message, message);
      return true;
    });
  }
});
