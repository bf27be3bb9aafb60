import assert from "node:assert/strict";
import { NodeBitset } from "./node_bitset.ts";

Deno.test("NodeBitset counts what it holds and grows for large numbers", () => {
  const set = new NodeBitset();
  assert.equal(set.add(3), true);
  assert.equal(set.add(3), false);
  assert.equal(set.add(4_999), true);
  assert.equal(set.size, 2);
  assert.equal(set.has(3), true);
  assert.equal(set.has(4), false);
  assert.equal(set.has(100_000), false);
  assert.equal(set.delete(3), true);
  assert.equal(set.delete(3), false);
  assert.equal(set.size, 1);
  assert.ok(set.bytes >= 5_000 / 8);
});
