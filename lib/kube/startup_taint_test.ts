import assert from "node:assert/strict";
import { startApiFixture, testNode } from "../../testing/kube/api_fixture.ts";
import { inClusterConfig } from "./in_cluster.ts";
import { KubeClient } from "./kube_client.ts";
import { formatTaint, parseTaint, removeTaint, type TaintSpec } from "./startup_taint.ts";

const instant = { now: () => 0, wallNow: () => 0, sleep: () => Promise.resolve() };

Deno.test("parseTaint() reads key[=value]:effect as kubectl writes it", () => {
  assert.deepEqual(parseTaint("example.com/prefetching=true:NoSchedule"), {
    key: "example.com/prefetching",
    value: "true",
    effect: "NoSchedule",
  });
  assert.deepEqual(parseTaint("prefetching:NoExecute"), {
    key: "prefetching",
    effect: "NoExecute",
  });
  assert.deepEqual(parseTaint("a=:PreferNoSchedule"), {
    key: "a",
    value: "",
    effect: "PreferNoSchedule",
  });
  assert.equal(formatTaint(parseTaint("k=v:NoSchedule") as TaintSpec), "k=v:NoSchedule");
  assert.match(parseTaint("example.com/prefetching") as string, /has no effect/);
  assert.match(parseTaint("k:Sometimes") as string, /has no effect/);
  assert.match(parseTaint("bad key:NoSchedule") as string, /not a valid taint key/);
  assert.match(parseTaint("k=bad value:NoSchedule") as string, /not a valid taint value/);
});

const STARTUP = { key: "example.com/prefetching", value: "true", effect: "NoSchedule" };
const OTHER = { key: "node.kubernetes.io/not-ready", effect: "NoSchedule" };
const SPEC: TaintSpec = { key: "example.com/prefetching", effect: "NoSchedule" };

Deno.test("removeTaint() removes just that taint with a guarded JSON patch", async (t) => {
  await using api = await startApiFixture({ nodes: [testNode("node-a", [OTHER, STARTUP])] });
  using client = await KubeClient.create(inClusterConfig(api.env, api.serviceAccountDir));

  await t.step("a read, then test and remove of the taint at its index", async () => {
    assert.equal(await removeTaint(client, "node-a", SPEC, { clock: instant }), "removed");
    assert.deepEqual(api.server.nodes.get("node-a")!.spec.taints, [OTHER]);
    const [get, patch] = api.server.requests;
    assert.deepEqual([get.method, get.path], ["GET", "/api/v1/nodes/node-a"]);
    assert.deepEqual([patch.method, patch.path, patch.contentType, patch.body], [
      "PATCH",
      "/api/v1/nodes/node-a",
      "application/json-patch+json",
      [
        { op: "test", path: "/spec/taints/1", value: STARTUP },
        { op: "remove", path: "/spec/taints/1" },
      ],
    ]);
  });

  await t.step("a node without it is left alone", async () => {
    api.server.requests.length = 0;
    assert.equal(await removeTaint(client, "node-a", SPEC, { clock: instant }), "absent");
    assert.deepEqual(api.server.requests.map((r) => r.method), ["GET"]);
  });

  await t.step(
    "taints changed meanwhile: the test fails (422), the node is read again",
    async () => {
      api.server.nodes.get("node-a")!.spec.taints = [OTHER, STARTUP];
      api.server.requests.length = 0;
      api.server.beforeNextPatch((node) => node.spec.taints.shift()); // someone removes OTHER
      assert.equal(await removeTaint(client, "node-a", SPEC, { clock: instant }), "removed");
      assert.deepEqual(api.server.nodes.get("node-a")!.spec.taints, []);
      assert.deepEqual(api.server.requests.map((r) => `${r.method} ${r.status}`), [
        "GET 200",
        "PATCH 422",
        "GET 200",
        "PATCH 200",
      ]);
    },
  );

  await t.step("conflicts and server errors are retried; 403 says what RBAC lacks", async () => {
    api.server.nodes.get("node-a")!.spec.taints = [STARTUP];
    api.server.failNext(503, 409);
    assert.equal(await removeTaint(client, "node-a", SPEC, { clock: instant }), "removed");
    api.server.nodes.get("node-a")!.spec.taints = [STARTUP];
    api.server.grants = new Set(["patch"]);
    await assert.rejects(
      removeTaint(client, "node-a", SPEC, { clock: instant }),
      /the ServiceAccount lacks "get" on "nodes"/,
    );
  });

  await t.step("a value in the spec must match; without one any value does", async () => {
    api.server.grants = new Set(["get", "patch"]);
    const wrongValue: TaintSpec = { ...SPEC, value: "false" };
    assert.equal(await removeTaint(client, "node-a", wrongValue, { clock: instant }), "absent");
  });
});
