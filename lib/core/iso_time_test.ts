import assert from "node:assert/strict";
import { formatIsoTime } from "./iso_time.ts";

Deno.test("formatIsoTime agrees with Date#toISOString across the calendar's edges", () => {
  const edges = [
    0,
    -1,
    Date.UTC(2000, 1, 29, 23, 59, 59, 999), // a leap day of a century divisible by 400
    Date.UTC(2100, 2, 1), // the day after February of a century that is not a leap year
    Date.UTC(1900, 1, 28, 12),
    Date.UTC(1600, 0, 1),
    Date.UTC(9999, 11, 31, 23, 59, 59, 999),
    Date.UTC(2026, 11, 7, 1, 2, 3, 4),
  ];
  for (const ms of edges) assert.equal(formatIsoTime(ms), new Date(ms).toISOString(), `${ms}`);
});

Deno.test("formatIsoTime agrees with Date#toISOString on 100,000 random times", () => {
  const span = Date.UTC(9999, 11, 31) - Date.UTC(1000, 0, 1);
  for (let i = 0; i < 100_000; i++) {
    const ms = Date.UTC(1000, 0, 1) + Math.floor(Math.random() * span);
    assert.equal(formatIsoTime(ms), new Date(ms).toISOString(), `${ms}`);
  }
});

Deno.test("formatIsoTime drops fractions of a millisecond, as Date does", () => {
  assert.equal(formatIsoTime(1.9), "1970-01-01T00:00:00.001Z");
  assert.equal(formatIsoTime(1_765_000_000_123.75), new Date(1_765_000_000_123.75).toISOString());
});
