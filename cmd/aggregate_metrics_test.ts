import assert from "node:assert/strict";
import { InvalidInputError } from "../lib/core/exit_codes.ts";
import { parseAggregateMetricsArgs } from "./aggregate_metrics.ts";

Deno.test("aggregate-metrics --waves takes its tuning flags, with defaults", () => {
  const plain = parseAggregateMetricsArgs([]);
  assert.equal(plain.kind === "run" && plain.config.waves, undefined);
  const waves = parseAggregateMetricsArgs(["--waves"]);
  assert.deepEqual(waves.kind === "run" && waves.config.waves, {
    firstWave: 1,
    fanout: 4,
    maxNodesPulling: 0,
    leaseMs: 30_000,
  });
  const tuned = parseAggregateMetricsArgs([
    "--waves",
    "--first-wave=2",
    "--fanout",
    "50",
    "--max-nodes-pulling",
    "3",
    "--lease-timeout",
    "1m",
  ]);
  assert.deepEqual(tuned.kind === "run" && tuned.config.waves, {
    firstWave: 2,
    fanout: 50,
    maxNodesPulling: 3,
    leaseMs: 60_000,
  });
});

Deno.test("aggregate-metrics refuses waves flags without --waves, and bad values", () => {
  for (
    const [args, message] of [
      [["--fanout", "3"], /--fanout tunes waves: add --waves/],
      [["--waves", "--fanout", "0"], /--fanout must be a whole number from 1/],
      [["--waves", "--lease-timeout", "0s"], /--lease-timeout must be longer than 0s/],
      [["--waves", "--lease-timeout", "soon"], /--lease-timeout/],
    ] as const
  ) {
    assert.throws(() => parseAggregateMetricsArgs([...args]), (e: Error) => {
      assert.ok(e instanceof InvalidInputError);
      assert.match(e.message, message);
      return true;
    });
  }
});
