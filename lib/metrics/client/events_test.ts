import assert from "node:assert/strict";
import { metricsReporter } from "./events.ts";
import type { MetricsResult } from "../protocol.ts";
import type { PullEvent } from "../../pull/scheduler.ts";

function run(events: PullEvent[]): MetricsResult[] {
  const sent: MetricsResult[] = [];
  let id = 0;
  const report = metricsReporter({
    node: "n1",
    imagesTotal: 2,
    submit: (r) => sent.push(r),
    newAttemptId: () => `made-${++id}`,
    clock: { now: () => 5_000, wallNow: () => 5_000 },
  });
  events.forEach(report);
  return sent;
}

const finished = (attempt: number, error?: string): PullEvent => ({
  type: "attempt-finished",
  image: "a",
  attempt,
  attemptId: `a-${attempt}`,
  startedAt: 2_000,
  timeoutMs: 30_000,
  durationMs: 700,
  elapsedMs: 900,
  error,
});
const done = (status: "pulled" | "failed"): PullEvent => ({
  type: "image-done",
  result: { image: "a", status, attempts: 2, elapsedMs: 1 },
});

Deno.test("a failed attempt followed by a retry is attempt-failed, the last one failed", () => {
  const sent = run([
    finished(1, "timeout"),
    { type: "retry-scheduled", image: "a", attempt: 1, delayMs: 1000, elapsedMs: 1 },
    finished(2, "denied"),
    done("failed"),
  ]);
  assert.deepEqual(sent.map((r) => [r.attemptId, r.attempt, r.outcome, r.error]), [
    ["a-1", 1, "attempt-failed", "timeout"],
    ["a-2", 2, "failed", "denied"],
  ]);
  assert.deepEqual([sent[0].node, sent[0].imagesTotal, sent[0].startedAt], ["n1", 2, 2]);
});

Deno.test("a pull, an image already present and an interrupted wait each report once", () => {
  const sent = run([
    finished(1),
    done("pulled"),
    { type: "present", image: "b", elapsedMs: 1, sizeBytes: 9 },
    { type: "image-done", result: { image: "c", status: "failed", attempts: 0, elapsedMs: 1 } },
  ]);
  assert.deepEqual(sent.map((r) => [r.image, r.attemptId, r.attempt, r.outcome]), [
    ["a", "a-1", 1, "pulled"],
    ["b", "made-1", 0, "present"],
    ["c", "made-2", 0, "failed"],
  ]);
});

Deno.test("progress events become in-progress results that the attempt's result supersedes", () => {
  const sent: MetricsResult[] = [];
  let clock = 10_000;
  let wallStep = 0;
  const report = metricsReporter({
    node: "n1",
    imagesTotal: 1,
    submit: (r) => sent.push(r),
    clock: { now: () => clock, wallNow: () => clock + wallStep },
  });
  const progress = (receivedBytes: number, storedBytes: number): PullEvent => ({
    type: "progress",
    image: "a",
    attempt: 1,
    attemptId: "a-1",
    progress: {
      receivedBytes,
      storedBytes,
      totalBytes: 6_000_000,
      bytesPerSecond: 1_048_576.4,
      downloading: true,
    },
    elapsedMs: 0,
  });
  report({
    type: "attempt-started",
    image: "a",
    attempt: 1,
    attemptId: "a-1",
    timeoutMs: 30_000,
    elapsedMs: 0,
  });
  clock += 1_500;
  report(progress(1_000_000, 1_500_000));
  clock += 1_000;
  // The wall clock steps an hour back (chrony on a fresh node): durations do not change.
  wallStep = -3_600_000;
  report(progress(2_000_000, 2_500_000));
  report({
    type: "attempt-finished",
    image: "a",
    attempt: 1,
    attemptId: "a-1",
    startedAt: 10_000,
    timeoutMs: 30_000,
    durationMs: 5_000,
    elapsedMs: 5_000,
  });
  assert.deepEqual(
    sent.map((r) => [r.attemptId, r.outcome, r.bytesReceived, r.storedBytes, r.durationMs]),
    [
      ["a-1", "in-progress", 1_000_000, 1_500_000, 1_500],
      ["a-1", "in-progress", 2_000_000, 2_500_000, 2_500],
      ["a-1", "pulled", undefined, undefined, 5_000],
    ],
  );
  assert.deepEqual(
    [sent[0].startedAt, sent[0].attempt, sent[0].totalBytes, sent[0].throughputBytesPerSecond],
    [10, 1, 6_000_000, 1_048_576],
    "started when the attempt did, a whole rate",
  );
  assert.equal(sent[1].startedAt, sent[0].startedAt, "the start stays what the wall clock said");
  assert.equal(sent[2].startedAt, sent[0].startedAt);
});

Deno.test("every result of a run carries the run's id, and the next run has another", () => {
  const events: PullEvent[] = [
    finished(1),
    done("pulled"),
    { type: "present", image: "b", elapsedMs: 1, sizeBytes: 9 },
  ];
  const first = run(events), second = run(events);
  assert.equal(new Set(first.map((r) => r.runId)).size, 1);
  assert.match(first[0].runId!, /^[0-9a-f-]{36}$/);
  assert.notEqual(second[0].runId, first[0].runId);
});
