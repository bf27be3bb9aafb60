import assert from "node:assert/strict";
import { startApiFixture, testNode } from "../../testing/kube/api_fixture.ts";
import { Logger } from "../core/log.ts";
import { updateNodeAfterRun } from "./node_after_run.ts";

const instant = { now: () => 0, wallNow: () => 0, sleep: () => Promise.resolve() };
const KEY = "image-prefetcher.stackrox.io/my-images";
const TAINT = { key: "example.com/prefetching", effect: "NoSchedule" } as const;

function logCollector() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = new Logger({ format: "json", write: (line) => lines.push(JSON.parse(line)) });
  return { logger, lines };
}

Deno.test("updateNodeAfterRun(): label always; taint by the run's end and --strict", async () => {
  const cases = [
    {
      end: { allOnNode: true, interrupted: false, strict: false },
      label: "succeeded",
      tainted: false,
    },
    {
      end: { allOnNode: false, interrupted: false, strict: false },
      label: "failed",
      tainted: false,
    },
    {
      end: { allOnNode: true, interrupted: false, strict: true },
      label: "succeeded",
      tainted: false,
    },
    { end: { allOnNode: false, interrupted: false, strict: true }, label: "failed", tainted: true },
    { end: { allOnNode: false, interrupted: true, strict: false }, label: "failed", tainted: true },
  ];
  for (const { end, label, tainted } of cases) {
    await using api = await startApiFixture({ nodes: [testNode("node-a", [TAINT])] });
    const { logger, lines } = logCollector();
    const result = await updateNodeAfterRun(
      { labelKey: KEY, startupTaint: TAINT, serviceAccountDir: api.serviceAccountDir },
      { node: "node-a", ...end },
      { logger, clock: instant, env: api.env },
    );
    const node = api.server.nodes.get("node-a")!;
    const what = JSON.stringify(end);
    assert.equal(node.metadata.labels[KEY], label, what);
    assert.equal(node.spec.taints.length, tainted ? 1 : 0, what);
    assert.deepEqual(result, { taintRemovalFailed: false }, what);
    assert.ok(lines.every((l) => l.level !== "error"), JSON.stringify(lines));
  }
});

Deno.test("updateNodeAfterRun(): each failure is one error line; a due taint reports failure", async () => {
  await using api = await startApiFixture({ nodes: [testNode("node-a", [TAINT])], grants: [] });
  const { logger, lines } = logCollector();
  const result = await updateNodeAfterRun(
    { labelKey: KEY, startupTaint: TAINT, serviceAccountDir: api.serviceAccountDir },
    { node: "node-a", allOnNode: true, interrupted: false, strict: false },
    { logger, clock: instant, env: api.env },
  );
  assert.deepEqual(result, { taintRemovalFailed: true });
  const errors = lines.filter((l) => l.level === "error");
  assert.deepEqual(errors.map((l) => l.msg), [
    "could not label the node",
    "could not remove the startup taint; exiting 4 so the kubelet retries",
  ]);
  assert.match(String(errors[0].error), /lacks "patch" on "nodes"/);
  assert.match(String(errors[1].error), /lacks "get" on "nodes"/);
  assert.equal(errors[0].label, `${KEY}=succeeded`);
});

Deno.test("updateNodeAfterRun(): outside a cluster, one line and no throw", async () => {
  const { logger, lines } = logCollector();
  const result = await updateNodeAfterRun(
    { labelKey: KEY },
    { node: "node-a", allOnNode: true, interrupted: false, strict: false },
    { logger, clock: instant, env: {} },
  );
  assert.deepEqual(result, { taintRemovalFailed: false });
  assert.equal(lines.length, 1);
  assert.match(String(lines[0].error), /KUBERNETES_SERVICE_HOST/);
});
