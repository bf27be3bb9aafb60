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

Deno.test("aggregate-metrics --node-service-account: the account, audience and API directory", () => {
  const parsed = parseAggregateMetricsArgs([
    "--node-service-account",
    "prefetch/my-images",
    "--token-audience",
    "image-prefetcher:prefetch:my-images",
    "--local-http-port",
    "8081",
  ]);
  assert.ok(parsed.kind === "run");
  assert.deepEqual(parsed.kubernetesAuth, {
    serviceAccount: { namespace: "prefetch", name: "my-images" },
    audience: "image-prefetcher:prefetch:my-images",
    serviceAccountDir: "/var/run/secrets/kubernetes.io/serviceaccount",
  });
  assert.equal(parsed.config.localHttpPort, 8081);
  const plain = parseAggregateMetricsArgs([]);
  assert.ok(plain.kind === "run");
  assert.equal(plain.kubernetesAuth, undefined);
  assert.equal(plain.config.localHttpPort, undefined, "no loopback port unless asked");
});

Deno.test("aggregate-metrics refuses a bad account, two kinds of auth, or stray auth flags", () => {
  for (
    const [args, message] of [
      [["--node-service-account", "my-images"], /must be <namespace>\/<name>/],
      [["--node-service-account", "Pf/x"], /must be <namespace>\/<name>/],
      [
        ["--node-service-account", "pf/x", "--token-file", "/t"],
        /--token-file and --node-service-account are two ways/,
      ],
      [["--token-audience", "x"], /--token-audience goes with --node-service-account/],
      [["--service-account-dir", "/d"], /--service-account-dir goes with --node-service-account/],
      [["--node-service-account", "pf/x", "--token-audience", ""], /must be one word/],
    ] as const
  ) {
    assert.throws(() => parseAggregateMetricsArgs([...args]), (e: Error) => {
      assert.ok(e instanceof InvalidInputError);
      assert.match(e.message, message);
      return true;
    });
  }
});

Deno.test("aggregate-metrics takes its store bounds and --node-gone-after, with defaults", () => {
  const plain = parseAggregateMetricsArgs([]);
  assert.ok(plain.kind === "run");
  assert.deepEqual(
    [plain.config.maxNodes, plain.config.maxImages, plain.config.nodeGoneAfterMs],
    [20_000, 5_000, 900_000],
  );
  const tuned = parseAggregateMetricsArgs([
    "--max-nodes=6000",
    "--max-images",
    "300",
    "--node-gone-after",
    "5m",
  ]);
  assert.ok(tuned.kind === "run");
  assert.deepEqual(
    [tuned.config.maxNodes, tuned.config.maxImages, tuned.config.nodeGoneAfterMs],
    [6_000, 300, 300_000],
  );
  for (
    const [args, message] of [
      [["--node-gone-after", "0s"], /--node-gone-after must be longer than 0s/],
      [["--max-nodes", "0"], /--max-nodes must be a whole number from 1/],
    ] as const
  ) {
    assert.throws(() => parseAggregateMetricsArgs([...args]), (e: Error) => {
      assert.ok(e instanceof InvalidInputError);
      assert.match(e.message, message);
      return true;
    });
  }
});
