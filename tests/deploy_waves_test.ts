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
  assert.equal(parsed.config.tokenFile, TOKEN_FILE);
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

Deno.test("the token Secret is filled by Kubernetes and mounted into both sides", () => {
  const objects = renderManifests("my-images", { waves: true });
  const secret = find(objects, "Secret");
  assert.equal(secret.type, "kubernetes.io/service-account-token");
  assert.equal(secret.data, undefined, "the manifest holds no secret");
  const account = find(objects, "ServiceAccount");
  assert.equal(
    secret.metadata.annotations["kubernetes.io/service-account.name"],
    account.metadata.name,
  );
  assert.equal(account.automountServiceAccountToken, false);
  for (const kind of ["Deployment", "DaemonSet"]) {
    const pod = find(objects, kind).spec.template.spec;
    const container = kind === "Deployment" ? pod.containers[0] : pod.initContainers[0];
    const mount = container.volumeMounts.find((m: Json) =>
      TOKEN_FILE.startsWith(m.mountPath + "/")
    );
    assert.ok(mount, `${kind} does not mount ${TOKEN_FILE}`);
    assert.equal(mount.readOnly, true);
    const volume = pod.volumes.find((v: Json) => v.name === mount.name);
    assert.equal(volume.secret.secretName, secret.metadata.name);
    assert.deepEqual(volume.secret.items, [{ key: "token", path: TOKEN_FILE.split("/").at(-1) }]);
  }
  // No pod runs as the token's ServiceAccount.
  for (const kind of ["Deployment", "DaemonSet"]) {
    assert.notEqual(
      find(objects, kind).spec.template.spec.serviceAccountName,
      account.metadata.name,
    );
  }
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
