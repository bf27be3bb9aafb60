/**
 * The cluster simulator, small: 200 nodes × 10 images, one of them missing from the registry,
 * with waves, against a real `aggregate-metrics --waves` process over gRPC. Pins what the
 * coordinator must get right at scale without asserting any timing: every node ends, the
 * missing image fails on every node and only there, each image that exists comes from the
 * origin at most twice (the pull-through cache serves the rest), and the coordinator counts no
 * holder that is not one (two nodes are reimaged and run again under the same name). The figures themselves are `bench/cluster_sim.ts`'s.
 */
import assert from "node:assert/strict";
import { simulateCluster } from "../testing/cluster_sim/cluster_sim.ts";

const MIB = 1024 * 1024;

Deno.test("200 simulated nodes with waves and a 404 image: all end, the origin serves each blob at most twice", async () => {
  const result = await simulateCluster({
    nodes: 200,
    images: 10,
    waves: true,
    imageBytes: [MIB / 4, MIB],
    nodeBytesPerSecond: 125_000_000,
    originBytesPerSecond: 1_250_000_000,
    faults: { missingImages: 1, reimagedNodes: 2 },
    timeoutMs: 90_000,
    channels: 2,
  });
  assert.equal(result.doneNodes, result.liveNodes, "every node ended within the bound");
  assert.notEqual(result.missingDoneAfterFirstFailureMs, undefined, "every node ended the 404");
  assert.equal(result.wronglyFailed, 0, "no image that exists failed");
  assert.ok(result.originRatio <= 2, `origin served ${result.originRatio.toFixed(2)}× the set`);
  assert.ok(
    result.phantomHolders !== undefined && result.phantomHolders <= 0,
    `the coordinator counts ${result.phantomHolders} holders that are none`,
  );
});
