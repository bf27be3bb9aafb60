/**
 * Node label and startup taint end to end: the real program against a real containerd and
 * registry, talking HTTPS to the contract test API server as an in-cluster pod would (token and CA
 * files, KUBERNETES_SERVICE_* environment).
 */
import assert from "node:assert/strict";
import { startStack } from "../testing/stack/stack.ts";
import { jsonFetchArgs, type ProgramRun, runProgram } from "../testing/prefetcher_process.ts";
import { type ApiFixture, startApiFixture, testNode } from "../testing/kube/api_fixture.ts";

const KEY = "image-prefetcher.stackrox.io/my-images";
const TAINT = { key: "example.com/prefetching", value: "true", effect: "NoSchedule" };
const OTHER = { key: "node.kubernetes.io/not-ready", effect: "NoSchedule" };

function describe(run: ProgramRun): string {
  return `exit ${run.code}\nstdout:\n${run.stdout}\nstderr:\n${run.stderr}`;
}

Deno.test("fetch labels its node and removes the startup taint", async (t) => {
  await using stack = await startStack();
  const image = await stack.pushImage({ repository: "node/app", tag: "v1" });
  const present = image.reference(stack.registry.host);
  const missing = `${stack.registry.host}/node/absent:v1`;

  async function fetchWith(api: ApiFixture, images: string[], args: string[] = []) {
    return await runProgram([
      ...jsonFetchArgs(stack.containerd.socket),
      "--node-name",
      "node-a",
      "--node-label",
      KEY,
      "--remove-startup-taint",
      "example.com/prefetching=true:NoSchedule",
      "--service-account-dir",
      api.serviceAccountDir,
      "--overall-timeout",
      "1m",
      ...args,
      ...images,
    ], { env: api.env });
  }
  const fixture = (grants = ["get", "patch"]) =>
    startApiFixture({ nodes: [testNode("node-a", [OTHER, TAINT])], grants });

  await t.step("every image on the node: succeeded, taint removed, exit 0", async () => {
    await using api = await fixture();
    const run = await fetchWith(api, [present]);
    assert.equal(run.code, 0, describe(run));
    const node = api.server.nodes.get("node-a")!;
    assert.equal(node.metadata.labels[KEY], "succeeded");
    assert.deepEqual(node.spec.taints, [OTHER]);
    assert.ok(run.events.some((e) => e.msg === "node labelled" && e.label === `${KEY}=succeeded`));
    assert.ok(run.events.some((e) => e.msg.startsWith("startup taint removed: every image")));
    // The token never appears in the logs.
    assert.ok(!run.stderr.includes("token-1"));
  });

  await t.step(
    "an image failed: failed, taint removed anyway without --strict, exit 0",
    async () => {
      await using api = await fixture();
      const run = await fetchWith(api, [present, missing]);
      assert.equal(run.code, 0, describe(run));
      const node = api.server.nodes.get("node-a")!;
      assert.equal(node.metadata.labels[KEY], "failed");
      assert.deepEqual(node.spec.taints, [OTHER]);
      assert.ok(run.events.some((e) => e.msg.startsWith("startup taint removed although")));
    },
  );

  await t.step("an image failed with --strict: failed, taint kept, exit 1", async () => {
    await using api = await fixture();
    const run = await fetchWith(api, [present, missing], ["--strict"]);
    assert.equal(run.code, 1, describe(run));
    const node = api.server.nodes.get("node-a")!;
    assert.equal(node.metadata.labels[KEY], "failed");
    assert.deepEqual(node.spec.taints, [OTHER, TAINT]);
  });

  await t.step("the API fails for a while: retried, written", async () => {
    await using api = await fixture();
    api.server.failNext(503, 500);
    const run = await fetchWith(api, [present]);
    assert.equal(run.code, 0, describe(run));
    assert.equal(api.server.nodes.get("node-a")!.metadata.labels[KEY], "succeeded");
  });

  await t.step(
    "RBAC lacks patch: one error line each, label never changes the status",
    async () => {
      await using api = await fixture(["get"]);
      const run = await fetchWith(api, [present]);
      const errors = run.events.filter((e) => e.level === "error");
      assert.deepEqual(errors.map((e) => e.msg), [
        "could not label the node",
        "could not remove the startup taint; exiting 4 so the kubelet retries",
      ], describe(run));
      for (const error of errors) assert.match(String(error.error), /lacks "patch" on "nodes"/);
      // The taint was due and is still there, so the kubelet must run fetch again: exit 4.
      assert.equal(run.code, 4, describe(run));
      const labelOnly = await runProgram([
        ...jsonFetchArgs(stack.containerd.socket),
        "--node-name",
        "node-a",
        "--node-label",
        KEY,
        "--service-account-dir",
        api.serviceAccountDir,
        present,
      ], { env: api.env });
      assert.equal(labelOnly.code, 0, describe(labelOnly));
      assert.equal(labelOnly.events.filter((e) => e.level === "error").length, 1);
    },
  );
});
