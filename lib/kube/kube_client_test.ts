import assert from "node:assert/strict";
import { startApiFixture, testNode } from "../../testing/kube/api_fixture.ts";
import { makeTestCertificates } from "../../testing/kube/test_ca.ts";
import { inClusterConfig } from "./in_cluster.ts";
import { KubeClient } from "./kube_client.ts";
import { KubeApiError } from "./kube_error.ts";

Deno.test("inClusterConfig() reads the service host and port, brackets IPv6", () => {
  const env = { KUBERNETES_SERVICE_HOST: "fd00::1", KUBERNETES_SERVICE_PORT: "443" };
  assert.deepEqual(inClusterConfig(env, "/sa"), {
    server: "https://[fd00::1]:443",
    tokenFile: "/sa/token",
    caFile: "/sa/ca.crt",
  });
  assert.throws(() => inClusterConfig({}, "/sa"), /need fetch to run in a pod of the cluster/);
});

Deno.test("KubeClient talks HTTPS to the API with the cluster CA and the current token", async (t) => {
  await using api = await startApiFixture({ nodes: [testNode("node-a")] });
  using client = await KubeClient.create(inClusterConfig(api.env, api.serviceAccountDir));

  await t.step("GET and PATCH follow the API's contract", async () => {
    const node = await client.getNode("node-a");
    assert.equal(node.metadata.name, "node-a");
    const patched = await client.patchNode("node-a", "application/merge-patch+json", {
      metadata: { labels: { "example.com/x": "y" } },
    });
    assert.equal(patched.metadata.labels?.["example.com/x"], "y");
    assert.deepEqual(api.server.requests.map((r) => [r.method, r.path, r.contentType, r.status]), [
      ["GET", "/api/v1/nodes/node-a", undefined, 200],
      ["PATCH", "/api/v1/nodes/node-a", "application/merge-patch+json", 200],
    ]);
  });

  await t.step("a rotated token is read from its file on the next request", async () => {
    await api.rotateToken("token-2");
    assert.equal((await client.getNode("node-a")).metadata.name, "node-a");
  });

  await t.step("errors say what failed and what to do", async () => {
    await assert.rejects(client.getNode("node-b"), (error: KubeApiError) => {
      assert.ok(error instanceof KubeApiError);
      assert.equal(error.status, 404);
      assert.match(error.message, /get nodes\/node-b: HTTP 404 \(nodes "node-b" not found\)/);
      return true;
    });
    api.server.grants = new Set(["get"]);
    await assert.rejects(
      client.patchNode("node-a", "application/merge-patch+json", { metadata: {} }),
      (error: KubeApiError) => {
        assert.equal(error.status, 403);
        assert.match(error.message, /the ServiceAccount lacks "patch" on "nodes"/);
        assert.match(error.message, /verbs: \["patch"\]/);
        return true;
      },
    );
    api.server.token = "someone-else";
    await assert.rejects(client.getNode("node-a"), /did not accept the ServiceAccount token/);
  });
});

Deno.test("KubeClient trusts only the cluster's CA", async () => {
  await using api = await startApiFixture({ nodes: [testNode("node-a")] });
  await Deno.writeTextFile(
    `${api.serviceAccountDir}/ca.crt`,
    (await makeTestCertificates()).caCert,
  );
  using client = await KubeClient.create(inClusterConfig(api.env, api.serviceAccountDir));
  await assert.rejects(client.getNode("node-a"), (error: KubeApiError) => {
    assert.equal(error.status, 0);
    assert.match(error.message, /no answer from the API server/);
    return true;
  });
  assert.equal(api.server.requests.length, 0);
});
