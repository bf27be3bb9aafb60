import assert from "node:assert/strict";
import { Logger } from "../core/log.ts";
import { logPullEvent } from "./event_log.ts";

function logged(event: Parameters<typeof logPullEvent>[1]): Record<string, unknown> {
  const lines: string[] = [];
  logPullEvent(new Logger({ format: "json", write: (l) => lines.push(l), now: () => 0 }), event);
  assert.equal(lines.length, 1);
  return JSON.parse(lines[0]);
}

Deno.test("every attempt line names the image, attempt, timeout and elapsed time", () => {
  const started = logged({
    type: "attempt-started",
    image: "r/a:1",
    attempt: 2,
    attemptId: "id",
    timeoutMs: 60_000,
    elapsedMs: 31_500,
  });
  assert.deepEqual(
    [started.msg, started.image, started.attempt, started.timeout, started.elapsed],
    ["pull attempt started", "r/a:1", 2, "1m", "31.5s"],
  );
  const failed = logged({
    type: "attempt-finished",
    image: "r/a:1",
    attempt: 2,
    attemptId: "id",
    startedAt: 0,
    timeoutMs: 60_000,
    durationMs: 12_000,
    elapsedMs: 43_500,
    error: "the attempt received nothing for 10s (stalled after 3145728 bytes)",
    receivedBytes: 3 << 20,
  });
  assert.equal(failed.level, "warn");
  assert.equal(failed.received, "3.0 MiB");
  assert.equal(failed.timeout, "1m");
});

Deno.test("a progress line gives received, total, rate and time left", () => {
  const line = logged({
    type: "progress",
    image: "r/big:1",
    attempt: 1,
    attemptId: "id",
    elapsedMs: 20_000,
    progress: {
      receivedBytes: 20 << 20,
      storedBytes: 20 << 20,
      totalBytes: 50 << 20,
      bytesPerSecond: 1 << 20,
      downloading: true,
    },
  });
  assert.deepEqual(
    [line.msg, line.received, line.total, line.rate, line.eta],
    ["pull progress", "20.0 MiB", "50.0 MiB", "1.0 MiB/s", "30s"],
  );
});

Deno.test("a failed image says why, with its last error", () => {
  const line = logged({
    type: "image-done",
    result: {
      image: "r/x:1",
      status: "failed",
      attempts: 1,
      elapsedMs: 50,
      error: "r/x:1: not found",
      failure: "permanent",
    },
  });
  assert.deepEqual([line.level, line.msg, line.reason], ["error", "image failed", "permanent"]);
});
