import assert from "node:assert/strict";
import type { MetricsResult, Outcome } from "../protocol.ts";
import { DeliveryBuffer } from "./delivery_buffer.ts";

function result(attemptId: string, outcome: Outcome = "pulled"): MetricsResult {
  return { attemptId, startedAt: 0, image: "a", node: "n", outcome, attempt: 1, durationMs: 1 };
}

Deno.test("a snapshot replaces its attempt's waiting one, never counts, and yields to the result", () => {
  const buffer = new DeliveryBuffer({ maxBuffered: 2, maxRemembered: 10 });
  assert.equal(buffer.putSnapshot(result("a-1", "in-progress")), true);
  assert.equal(buffer.putSnapshot({ ...result("a-1", "in-progress"), durationMs: 9 }), true);
  assert.equal(buffer.waiting, 1);
  assert.equal(buffer.next?.result.durationMs, 9);
  assert.equal(buffer.report.undelivered, 0, "snapshots are not attempts");
  buffer.forgetSnapshot("a-1");
  assert.equal(buffer.waiting, 0);
});

Deno.test("the open batch counts toward the bound; refused, dropped and waiting are undelivered", () => {
  const buffer = new DeliveryBuffer({ maxBuffered: 2, maxRemembered: 10 });
  buffer.add(result("a-1"));
  buffer.add(result("a-2"));
  buffer.takeNext();
  assert.equal(buffer.full, true);
  assert.equal(buffer.putSnapshot(result("a-3", "in-progress")), false);
  assert.equal(buffer.drop(), true, "the first drop says so");
  assert.equal(buffer.drop(), false);
  buffer.putBack(buffer.endBatch());
  assert.equal(buffer.next?.result.attemptId, "a-1", "a batch goes back in front");
  buffer.takeNext();
  buffer.endBatch();
  buffer.reject();
  assert.deepEqual(buffer.report, { delivered: 0, undelivered: 4, dropped: 2, rejected: 1 });
});

Deno.test("delivered results are counted once and the latest ones remembered for a restart", () => {
  const buffer = new DeliveryBuffer({ maxBuffered: 10, maxRemembered: 2 });
  for (const id of ["a-1", "a-2", "a-3"]) buffer.add(result(id));
  buffer.takeNext();
  buffer.takeNext();
  buffer.takeNext();
  const batch = buffer.endBatch();
  buffer.delivered(batch);
  assert.equal(buffer.resendRemembered([batch[2]]), 1);
  assert.equal(buffer.next?.result.attemptId, "a-2");
  buffer.takeNext();
  buffer.delivered(buffer.endBatch());
  assert.deepEqual(buffer.report, { delivered: 3, undelivered: 0, dropped: 0, rejected: 0 });
});

Deno.test("a snapshot in flight yields to a newer one of its attempt; a sent one is not forgotten twice", () => {
  const buffer = new DeliveryBuffer({ maxBuffered: 10, maxRemembered: 10 });
  buffer.putSnapshot({ ...result("a-1", "in-progress"), durationMs: 1 });
  buffer.add(result("a-2"));
  buffer.takeNext(); // the first snapshot is written to a batch
  buffer.putSnapshot({ ...result("a-1", "in-progress"), durationMs: 2 });
  buffer.putBack(buffer.endBatch()); // the batch failed
  assert.deepEqual(
    [buffer.takeNext(), buffer.takeNext()].map((e) =>
      `${e.result.attemptId}/${e.result.durationMs}`
    ),
    ["a-2/1", "a-1/2"],
    "the older snapshot is left out; the newer one keeps its place",
  );
  buffer.forgetSnapshot("a-1"); // already in the batch: nothing waits
  assert.equal(buffer.batch.length, 2);
  assert.equal(buffer.waiting, 0);
});
