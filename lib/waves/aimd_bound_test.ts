import assert from "node:assert/strict";
import { AimdBound } from "./aimd_bound.ts";

Deno.test("AimdBound is unbounded until a rate limit, then halves from the nodes pulling", () => {
  const aimd = new AimdBound();
  assert.equal(aimd.bound, Infinity);
  aimd.succeeded();
  assert.equal(aimd.bound, Infinity);
  assert.equal(aimd.rateLimited(8, 0), true);
  assert.equal(aimd.bound, 4);
});

Deno.test("AimdBound counts a burst of 429s within the cooldown once", () => {
  const aimd = new AimdBound({ cooldownMs: 5_000 });
  aimd.rateLimited(8, 0);
  assert.equal(aimd.rateLimited(8, 1_000), false);
  assert.equal(aimd.bound, 4);
  assert.equal(aimd.rateLimited(4, 5_000), true);
  assert.equal(aimd.bound, 2);
  aimd.rateLimited(2, 10_000);
  aimd.rateLimited(2, 15_000);
  assert.equal(aimd.bound, 1, "never below the minimum");
  assert.equal(aimd.decreases, 4);
});

Deno.test("AimdBound rises by one per success after a cut", () => {
  const aimd = new AimdBound();
  aimd.rateLimited(10, 0);
  for (let i = 0; i < 3; i++) aimd.succeeded();
  assert.equal(aimd.bound, 8);
});
