import assert from "node:assert/strict";
import { attemptTimeoutMs, retryDelayMs, type RetryScheduleOptions } from "./retry_schedule.ts";

const schedule: RetryScheduleOptions = {
  initialAttemptTimeoutMs: 30_000,
  maxAttemptTimeoutMs: 300_000,
  initialDelayMs: 1_000,
  maxDelayMs: 10_000,
  jitter: 0.2,
};

Deno.test("attempt timeouts double from the initial value and stop at their own maximum", () => {
  const timeouts = [1, 2, 3, 4, 5, 6, 100].map((n) => attemptTimeoutMs(n, schedule));
  assert.deepEqual(timeouts, [30_000, 60_000, 120_000, 240_000, 300_000, 300_000, 300_000]);
});

Deno.test("attempt timeouts are not capped by the delay maximum (the original tool's bug)", () => {
  assert.equal(attemptTimeoutMs(3, { ...schedule, maxDelayMs: 1_000 }), 120_000);
});

Deno.test("delays double and are capped by the delay maximum", () => {
  const middle = () => 0.5; // no jitter at the midpoint
  const delays = [1, 2, 3, 4, 5, 50].map((n) => retryDelayMs(n, schedule, middle));
  assert.deepEqual(delays, [1_000, 2_000, 4_000, 8_000, 10_000, 10_000]);
});

Deno.test("delays stray by at most the jitter fraction and never past the maximum", () => {
  assert.equal(retryDelayMs(1, schedule, () => 0), 800);
  assert.equal(retryDelayMs(1, schedule, () => 0.999999), 1_200);
  assert.equal(retryDelayMs(10, schedule, () => 0.999999), 10_000);
});
