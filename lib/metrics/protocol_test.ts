import assert from "node:assert/strict";
import {
  InvalidResultError,
  type MetricsResult,
  MetricsService,
  resultFromWire,
  resultToJson,
  resultToWire,
  type WireResult,
} from "./protocol.ts";

const pulled: MetricsResult = {
  attemptId: "a-1",
  startedAt: 1_700_000_000,
  image: "docker.io/library/debian:12",
  node: "node-1",
  outcome: "pulled",
  attempt: 1,
  durationMs: 1234,
  sizeBytes: 50_000_000,
  imageRef: "sha256:abc",
  instance: "my-images",
  imagesTotal: 3,
};

Deno.test("a result survives the trip to the wire and back", () => {
  assert.deepEqual(resultFromWire(resultToWire(pulled)), pulled);
  const failed: MetricsResult = {
    ...pulled,
    attemptId: "a-2",
    outcome: "failed",
    error: "boom",
    sizeBytes: undefined,
    imageRef: undefined,
  };
  const back = resultFromWire(resultToWire(failed));
  assert.equal(back.outcome, "failed");
  assert.equal(back.error, "boom");
  assert.equal("sizeBytes" in back, false);
});

Deno.test("a result of the original's clients gets its outcome from its error", () => {
  const legacy = { attempt_id: "x", image: "i", node: "n", started_at: 5, duration_ms: 7 };
  assert.equal(resultFromWire(legacy).outcome, "pulled");
  assert.equal(resultFromWire({ ...legacy, error: "timeout" }).outcome, "attempt-failed");
  assert.equal(resultFromWire({ ...legacy, outcome: "OUTCOME_UNSPECIFIED" }).outcome, "pulled");
  assert.equal(resultFromWire({ ...legacy, outcome: 2 }).outcome, "present");
});

Deno.test("JSON of /metrics: snake_case, empty fields left out, numbers as numbers", () => {
  assert.deepEqual(resultToJson(pulled), {
    attempt_id: "a-1",
    started_at: 1_700_000_000,
    image: "docker.io/library/debian:12",
    duration_ms: 1234,
    node: "node-1",
    size_bytes: 50_000_000,
    attempt: 1,
    outcome: "pulled",
    image_ref: "sha256:abc",
    instance: "my-images",
    images_total: 3,
  });
  assert.deepEqual(
    resultToJson({ ...pulled, outcome: "present", attempt: 0, durationMs: 0, imageRef: undefined }),
    {
      attempt_id: "a-1",
      started_at: 1_700_000_000,
      image: "docker.io/library/debian:12",
      node: "node-1",
      size_bytes: 50_000_000,
      outcome: "present",
      instance: "my-images",
      images_total: 3,
    },
  );
});

Deno.test("invalid results are refused with a kind", () => {
  const kindOf = (wire: Record<string, unknown>) => {
    try {
      resultFromWire(wire);
    } catch (error) {
      assert.ok(error instanceof InvalidResultError);
      return error.kind;
    }
    return "accepted";
  };
  assert.equal(kindOf({ image: "i" }), "attempt_id-missing");
  assert.equal(kindOf({ attempt_id: "x" }), "image-missing");
  assert.equal(kindOf({ attempt_id: "x", image: "i", outcome: 9 }), "outcome-unknown");
  assert.equal(kindOf({ attempt_id: "x", image: "i".repeat(2000) }), "image-too-long");
  assert.equal(kindOf({ attempt_id: "x", image: "i", duration_ms: -1 }), "duration_ms-range");
  assert.equal(kindOf({ attempt_id: "x", image: "i" }), "accepted");
});

Deno.test("an over-long error is cut to fit when sent", () => {
  const wire = resultToWire({ ...pulled, outcome: "failed", error: "e".repeat(10_000) });
  assert.equal(wire.error.length, 4096);
  assert.equal(resultFromWire(wire).error!.length, 4096);
});

Deno.test("an in-progress result carries its bytes, rate and total over the wire", () => {
  const snapshot: MetricsResult = {
    attemptId: "a-1",
    startedAt: 1_700_000_000,
    image: "docker.io/library/debian:12",
    node: "node-1",
    outcome: "in-progress",
    attempt: 1,
    durationMs: 3_000,
    imagesTotal: 3,
    bytesReceived: 3_000_000,
    throughputBytesPerSecond: 1_000_000,
    totalBytes: 6_000_000,
    storedBytes: 3_500_000,
  };
  const wire = resultToWire(snapshot);
  assert.deepEqual(
    [wire.outcome, wire.total_bytes, wire.stored_bytes, wire.size_bytes],
    ["OUTCOME_IN_PROGRESS", 6_000_000, 3_500_000, 0],
  );
  assert.deepEqual(resultFromWire(wire), snapshot);
  assert.equal(resultFromWire({ ...wire, outcome: 5 }).outcome, "in-progress");
  assert.deepEqual(resultToJson(snapshot).outcome, "in-progress");
  assert.equal(resultToJson(snapshot).total_bytes, 6_000_000);
});

Deno.test("run_id (field 17) goes over the wire; a result without one has none", () => {
  const result: MetricsResult = {
    attemptId: "a-1",
    startedAt: 1_700_000_000,
    image: "docker.io/library/debian:12",
    node: "node-1",
    outcome: "pulled",
    attempt: 1,
    durationMs: 3_000,
    runId: "5b0f6c1e-0f57-4a43-9a55-7e1f3c2a4d10",
  };
  const bytes = MetricsService.service.Submit.requestSerialize(resultToWire(result));
  const decoded = MetricsService.service.Submit.requestDeserialize(bytes) as WireResult;
  assert.equal(decoded.run_id, result.runId);
  assert.deepEqual(resultFromWire(decoded), result);
  assert.equal(resultToJson(result).run_id, result.runId);
  const { runId: _, ...old } = result;
  assert.equal(resultFromWire(resultToWire(old)).runId, undefined);
  assert.throws(
    () => resultFromWire({ ...resultToWire(result), run_id: "x".repeat(129) }),
    /run_id is 129 characters long; at most 128/,
  );
});
