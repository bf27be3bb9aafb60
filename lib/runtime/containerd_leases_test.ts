import assert from "node:assert/strict";
import { committedSnapshots, isUnpacking, type LeaseHoldings } from "./containerd_leases.ts";

const layer = `sha256:${"a".repeat(64)}`;
const other = `sha256:${"b".repeat(64)}`;
const extract = { type: "snapshots/overlayfs", id: `extract-1-x sha256:${"c".repeat(64)}` };
const committed = { type: "snapshots/native", id: `sha256:${"c".repeat(64)}` };

Deno.test("a lease holding one of the image's blobs and an extract- snapshot is unpacking", () => {
  const byContent: LeaseHoldings = {
    id: "pull",
    resources: [{ type: "content", id: layer }, extract],
  };
  const byIngest: LeaseHoldings = {
    id: "pull",
    resources: [{ type: "ingests", id: `layer-${layer}` }, extract],
  };
  assert.equal(isUnpacking([byContent], new Set([layer])), true);
  assert.equal(isUnpacking([byIngest], new Set([layer])), true);
});

Deno.test("a pull's lease with a committed snapshot is still unpacking (between layers, finishing)", () => {
  const between: LeaseHoldings = {
    id: "p1",
    resources: [{ type: "content", id: layer }, committed],
  };
  assert.equal(isUnpacking([between], new Set([layer])), true);
});

Deno.test("another pull's unpack, or a lease without snapshots, is not this image unpacking", () => {
  const otherPull: LeaseHoldings = {
    id: "p2",
    resources: [{ type: "content", id: other }, extract],
  };
  const downloading: LeaseHoldings = {
    id: "p3",
    resources: [{ type: "content", id: layer }, { type: "ingests", id: `layer-${other}` }],
  };
  assert.equal(isUnpacking([otherPull, downloading], new Set([layer])), false);
  assert.equal(isUnpacking([], new Set([layer])), false);
});

Deno.test("the snapshots to keep are the committed ones of the image's pull, not extract- ones", () => {
  const pull: LeaseHoldings = {
    id: "pull",
    resources: [{ type: "content", id: layer }, committed, extract],
  };
  const otherPull: LeaseHoldings = {
    id: "p2",
    resources: [{ type: "content", id: other }, { type: "snapshots/native", id: "sha256:dd" }],
  };
  assert.deepEqual(committedSnapshots([pull, otherPull], new Set([layer])), [committed]);
});
