import assert from "node:assert/strict";
import { Logger } from "../core/log.ts";
import { startApiFixture } from "../../testing/kube/api_fixture.ts";
import {
  failureReason,
  type ImageOutcome,
  MAX_IMAGE_EVENTS,
  type PodRef,
  publishRunEvents,
} from "./events.ts";

const POD: PodRef = { name: "my-images-x7k2p", namespace: "prefetch", uid: "0b6f-uid" };

function capture(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  return {
    lines,
    logger: new Logger({ format: "json", write: (line) => lines.push(JSON.parse(line)) }),
  };
}

function failed(image: string, error: string): ImageOutcome {
  return { image, status: "failed", attempts: 3, error, failure: "permanent" };
}

const NOT_FOUND = "PullImage failed: failed to resolve reference: not found";

Deno.test("one failed image yields one Event on the pod with its reason, counted on repeats", async () => {
  await using api = await startApiFixture();
  const { logger } = capture();
  const outcomes = [
    failed("registry.example/app:missing", NOT_FOUND),
    { image: "registry.example/ok:1", status: "pulled", attempts: 1 },
  ];
  const options = {
    node: "node-a",
    pod: POD,
    serviceAccountDir: api.serviceAccountDir,
    logger,
    env: api.env,
  };
  assert.deepEqual(await publishRunEvents(outcomes, options), { images: 1, summarized: 0 });
  assert.equal(api.server.events.size, 1);
  const [event] = api.server.events.values();
  assert.equal(event.reason, "ImageNotFound");
  assert.equal(event.type, "Warning");
  assert.equal(event.count, 1);
  assert.deepEqual(event.involvedObject, {
    apiVersion: "v1",
    kind: "Pod",
    name: POD.name,
    namespace: POD.namespace,
    uid: POD.uid,
  });
  assert.match(event.message, /registry\.example\/app:missing is not on node node-a: not found/);
  assert.match(event.message, /last error: .*not found/);

  await publishRunEvents(outcomes, options);
  assert.equal(api.server.events.size, 1, "a repeat is counted, not added");
  assert.equal([...api.server.events.values()][0].count, 2);
  assert.deepEqual(
    [...new Set(api.server.requests.map((r) => r.verb))].sort(),
    ["create", "patch"],
    "only create and patch on events",
  );
});

Deno.test("1,000 failing images: at most MAX_IMAGE_EVENTS Events and one summary", async () => {
  await using api = await startApiFixture();
  const { logger } = capture();
  const outcomes = Array.from(
    { length: 1_000 },
    (_, i) => failed(`registry.example/app-${i}:1`, i % 2 ? NOT_FOUND : "401 Unauthorized"),
  );
  const published = await publishRunEvents(outcomes, {
    node: "node-a",
    pod: POD,
    serviceAccountDir: api.serviceAccountDir,
    logger,
    env: api.env,
  });
  assert.deepEqual(published, { images: MAX_IMAGE_EVENTS, summarized: 1_000 - MAX_IMAGE_EVENTS });
  assert.equal(api.server.events.size, MAX_IMAGE_EVENTS + 1);
  assert.ok(
    api.server.requests.length <= 2 * (MAX_IMAGE_EVENTS + 1),
    "two calls per Event at most",
  );
  const summary = [...api.server.events.values()].find((e) => e.reason === "ImagesNotPrefetched");
  assert.match(
    summary?.message,
    /^990 more images are not on node node-a \(495 denied, 495 not found\)/,
  );
});

Deno.test("without a grant on events: one warning, the run goes on", async () => {
  await using api = await startApiFixture();
  api.server.eventGrants = new Set();
  const { logger, lines } = capture();
  const published = await publishRunEvents([failed("a.example/x:1", NOT_FOUND)], {
    node: "node-a",
    pod: POD,
    serviceAccountDir: api.serviceAccountDir,
    logger,
    env: api.env,
  });
  assert.deepEqual(published, { images: 0, summarized: 0 });
  assert.equal(lines.length, 1);
  assert.match(String(lines[0].error), /lacks "patch" on "events"/);
});

Deno.test("outside a cluster, Events are skipped with one log line", async () => {
  const { logger, lines } = capture();
  const outcome = [failed("a.example/x:1", NOT_FOUND)];
  const options = { node: "n", serviceAccountDir: "/nonexistent", logger, env: {} };
  assert.equal(await publishRunEvents(outcome, { ...options, pod: POD }), undefined);
  assert.equal(await publishRunEvents(outcome, options), undefined);
  assert.deepEqual(lines.map((l) => l.msg), [
    "Kubernetes Events about failed images skipped",
    "Kubernetes Events about failed images skipped",
  ]);
  assert.equal(
    await publishRunEvents([{ image: "a", status: "pulled", attempts: 1 }], options),
    undefined,
  );
  assert.equal(lines.length, 2, "nothing failed: nothing logged");
});

Deno.test("failureReason names the five reasons from the runtimes' errors", () => {
  const cases: [Partial<ImageOutcome>, string][] = [
    [{ error: NOT_FOUND }, "not found"],
    [{ error: "unexpected status from HEAD request: 401 Unauthorized" }, "denied"],
    [{ error: "pull access denied, repository does not exist" }, "denied"],
    [{ error: "the attempt received nothing for 10s (stalled after 0 bytes)" }, "stalled"],
    [{ error: "failed: 429 Too Many Requests" }, "rate limited"],
    [{ error: "toomanyrequests: You have reached your pull rate limit" }, "rate limited"],
    [{ error: "connection reset", failure: "overall-timeout" }, "timed out"],
    [{ error: "context deadline exceeded" }, "timed out"],
    [{ error: "connection refused" }, "failed"],
  ];
  for (const [outcome, reason] of cases) {
    assert.equal(failureReason(outcome), reason, String(outcome.error));
  }
});
