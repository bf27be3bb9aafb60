import assert from "node:assert/strict";
import { startApiFixture, testNode } from "../../testing/kube/api_fixture.ts";
import { inClusterConfig } from "./in_cluster.ts";
import { KubeClient } from "./kube_client.ts";
import { labelNode } from "./node_label.ts";

/** Waits take no time; the attempts are what is tested. */
const instant = { now: () => 0, wallNow: () => 0, sleep: () => Promise.resolve() };
const KEY = "image-prefetcher.stackrox.io/my-images";

Deno.test("labelNode() sends one merge patch of the label, retrying 5xx, 409 and 429 within bounds", async (t) => {
  await using api = await startApiFixture({ nodes: [testNode("node-a")] });
  using client = await KubeClient.create(inClusterConfig(api.env, api.serviceAccountDir));

  await t.step("the request is a merge patch of exactly that label", async () => {
    await labelNode(client, "node-a", KEY, "succeeded", { clock: instant });
    assert.deepEqual(api.server.requests.map((r) => [r.method, r.path, r.contentType, r.body]), [[
      "PATCH",
      "/api/v1/nodes/node-a",
      "application/merge-patch+json",
      { metadata: { labels: { [KEY]: "succeeded" } } },
    ]]);
    assert.equal(api.server.nodes.get("node-a")!.metadata.labels[KEY], "succeeded");
    // Other labels are untouched.
    assert.equal(
      api.server.nodes.get("node-a")!.metadata.labels["kubernetes.io/hostname"],
      "node-a",
    );
  });

  await t.step("server errors, throttling and conflicts are retried", async () => {
    api.server.requests.length = 0;
    api.server.failNext(500, 502, 429, 409);
    await labelNode(client, "node-a", KEY, "failed", { clock: instant });
    assert.deepEqual(api.server.requests.map((r) => r.status), [500, 502, 429, 409, 200]);
    assert.equal(api.server.nodes.get("node-a")!.metadata.labels[KEY], "failed");
  });

  await t.step("the retries are bounded", async () => {
    api.server.requests.length = 0;
    api.server.failNext(503, 503, 503);
    await assert.rejects(
      labelNode(client, "node-a", KEY, "succeeded", { clock: instant, attempts: 3 }),
      /HTTP 503/,
    );
    assert.equal(api.server.requests.length, 3);
    api.server.requests.length = 0;
    api.server.failNext(503, 503);
    await assert.rejects(
      labelNode(client, "node-a", KEY, "succeeded", { clock: instant, deadline: 0 }),
      /HTTP 503/,
    );
    assert.equal(api.server.requests.length, 1, "no retry would end before the deadline");
  });

  await t.step("403 and 404 are not retried", async () => {
    await labelNode(client, "node-a", KEY, "succeeded", { clock: instant }); // the 503 left
    api.server.requests.length = 0;
    api.server.grants = new Set(["get"]);
    await assert.rejects(
      labelNode(client, "node-a", KEY, "succeeded", { clock: instant }),
      /the ServiceAccount lacks "patch" on "nodes"/,
    );
    api.server.grants = new Set(["patch"]);
    await assert.rejects(
      labelNode(client, "node-x", KEY, "succeeded", { clock: instant }),
      /nodes "node-x" not found/,
    );
    assert.deepEqual(api.server.requests.map((r) => r.status), [403, 404]);
  });

  await t.step("the API server's validation answers 422 for a bad label", async () => {
    await assert.rejects(
      labelNode(client, "node-a", "bad key!", "succeeded", { clock: instant }),
      /HTTP 422/,
    );
  });
});
