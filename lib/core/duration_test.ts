import assert from "node:assert/strict";
import { DurationError, formatDuration, parseDuration } from "./duration.ts";

Deno.test("parseDuration() converts Go-style durations to milliseconds", () => {
  const cases: [string, number][] = [
    ["0", 0],
    ["+0", 0],
    ["0s", 0],
    ["300ms", 300],
    ["30s", 30_000],
    ["5m", 300_000],
    ["1h", 3_600_000],
    ["1h30m", 5_400_000],
    ["1.5h", 5_400_000],
    ["2m3.5s", 123_500],
    ["1.s", 1_000],
    [".5s", 500],
    ["1.1s", 1_100],
    ["1h0m5s", 3_605_000],
    ["1500us", 1.5],
    ["1500µs", 1.5],
    ["1500\u03bcs", 1.5],
    ["2500000ns", 2.5],
    ["1ns", 0.000001],
    ["+30s", 30_000],
    ["  30s\n", 30_000],
    ["1.0000000001s", 1_000],
    ["2562047h", 2562047 * 3_600_000],
  ];
  for (const [text, expected] of cases) {
    assert.equal(parseDuration(text), expected, `parseDuration(${JSON.stringify(text)})`);
  }
});

Deno.test("parseDuration() rejects invalid text with a DurationError naming it and showing examples", () => {
  const cases: [string, RegExp][] = [
    ["", /it is empty/],
    ["   ", /it is empty/],
    ["-5s", /cannot be negative/],
    ["-0", /cannot be negative/],
    ["5", /"5" has no unit/],
    ["00", /has no unit/],
    ["1h30", /"30" has no unit/],
    ["1.", /has no unit/],
    ["abc", /no number before its unit/],
    ["s", /no number before its unit/],
    [".s", /no number before its unit/],
    ["+", /no number/],
    ["5x", /unknown unit "x"/],
    ["5 m", /unknown unit " m"/],
    ["5sec", /unknown unit "sec"/],
    ["1..5s", /"1\." has no unit/],
    ["1h-5m", /unknown unit "h-"/],
    ["2562048h", /too large/],
    ["99999999999999999999s", /too large/],
  ];
  for (const [text, problem] of cases) {
    assert.throws(() => parseDuration(text), (error: unknown) => {
      assert.ok(error instanceof DurationError, `${JSON.stringify(text)} throws DurationError`);
      assert.equal(error.name, "DurationError");
      assert.equal(error.text, text);
      assert.ok(error.message.startsWith(`${JSON.stringify(text)} is not a valid duration: `));
      assert.match(error.message, problem);
      assert.match(error.message, /30s, 5m, 1h30m/);
      return true;
    });
  }
});

Deno.test("formatDuration() writes the compact Go-like form", () => {
  const cases: [number, string][] = [
    [0, "0s"],
    [0.4, "0s"],
    [0.5, "1ms"],
    [1, "1ms"],
    [250, "250ms"],
    [250.4, "250ms"],
    [999.4, "999ms"],
    [999.6, "1s"],
    [1_000, "1s"],
    [1_500, "1.5s"],
    [1_549, "1.5s"],
    [1_950, "2s"],
    [30_000, "30s"],
    [59_960, "1m"],
    [300_000, "5m"],
    [330_000, "5m30s"],
    [3_600_000, "1h"],
    [5_400_000, "1h30m"],
    [3_605_000, "1h0m5s"],
    [3_661_500, "1h1m1.5s"],
    [90_000_000, "25h"],
    [-1_500, "-1.5s"],
    [-0.2, "0s"],
  ];
  for (const [ms, expected] of cases) {
    assert.equal(formatDuration(ms), expected, `formatDuration(${ms})`);
  }
});

Deno.test("formatDuration() output parses back to the rounded value", () => {
  for (const ms of [0, 7, 999, 1_000, 1_500, 61_000, 3_605_000, 5_400_000, 86_400_000]) {
    assert.equal(parseDuration(formatDuration(ms)), ms, `round trip of ${ms}`);
  }
});

Deno.test("formatDuration() rejects non-finite numbers with a RangeError", () => {
  for (const ms of [NaN, Infinity, -Infinity]) {
    assert.throws(() => formatDuration(ms), RangeError);
  }
});
