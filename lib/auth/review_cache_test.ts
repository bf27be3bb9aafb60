import assert from "node:assert/strict";
import { ReviewCache, tokenKey } from "./review_cache.ts";
import { tokenClaims } from "./jwt_claims.ts";
import { reuseMs } from "./node_identity.ts";

Deno.test("an answer is reused for its time, then asked again; concurrent asks share one", async () => {
  let now = 0;
  const clock = { now: () => now, wallNow: () => now, sleep: () => Promise.resolve() };
  const cache = new ReviewCache<string>({ clock });
  let reviews = 0;
  const review = () => Promise.resolve({ value: `answer-${++reviews}`, ttlMs: 1_000 });
  const [a, b] = await Promise.all([cache.get("k", review), cache.get("k", review)]);
  assert.deepEqual([a, b, reviews], ["answer-1", "answer-1", 1]);
  now += 999;
  assert.equal(await cache.get("k", review), "answer-1");
  now += 1;
  assert.equal(await cache.get("k", review), "answer-2");
});

Deno.test("the cache holds at most maxEntries, dropping the least recently used", async () => {
  const cache = new ReviewCache<number>({ maxEntries: 2 });
  let reviews = 0;
  const review = () => Promise.resolve({ value: ++reviews, ttlMs: 60_000 });
  await cache.get("a", review);
  await cache.get("b", review);
  await cache.get("a", review); // a is now the most recent
  await cache.get("c", review); // drops b
  assert.equal(cache.size, 2);
  assert.equal(await cache.get("a", review), 1);
  assert.equal(await cache.get("b", review), 4, "b was dropped and asked again");
});

Deno.test("a failed review and an answer with no time are not kept", async () => {
  const cache = new ReviewCache<string>();
  await assert.rejects(() => cache.get("k", () => Promise.reject(new Error("API down"))));
  assert.equal(cache.size, 0);
  assert.equal(await cache.get("k", () => Promise.resolve({ value: "x", ttlMs: 0 })), "x");
  assert.equal(cache.size, 0);
});

Deno.test("keys are hashes: the token is not kept, and a qualifier makes another key", async () => {
  const key = await tokenKey("s3cret");
  assert.match(key, /^[0-9a-f]{64}$/);
  assert.ok(!key.includes("s3cret"));
  assert.notEqual(await tokenKey("s3cret", "/metrics"), key);
});

Deno.test("a bound token's claims: expiry, pod and node; anything else has none", () => {
  const payload = {
    exp: 1_800_000_000,
    "kubernetes.io": { pod: { name: "p", uid: "u" }, node: { name: "n", uid: "x" } },
  };
  const part = btoa(JSON.stringify(payload)).replace(/=+$/, "").replace(/\+/g, "-")
    .replace(/\//g, "_");
  assert.deepEqual(tokenClaims(`e30.${part}.sig`), {
    expiresAtMs: 1_800_000_000_000,
    pod: { name: "p", uid: "u" },
    node: "n",
  });
  assert.deepEqual(tokenClaims("opaque-token"), {});
  assert.deepEqual(tokenClaims("a.!!!.c"), {});
});

Deno.test("a token's expiry (a time of day) bounds reuse against the wall clock", () => {
  const payload = btoa(JSON.stringify({ exp: 1_800_000_000 })).replace(/=+$/, "");
  const token = `e30.${payload}.sig`;
  // The monotonic clock starts near 0; the wall clock says 30 s before the expiry.
  const clock = {
    now: () => 5,
    wallNow: () => 1_800_000_000_000 - 30_000,
    sleep: () => Promise.resolve(),
  };
  assert.equal(reuseMs(token, 60_000, clock), 30_000);
  assert.equal(reuseMs("opaque-token", 60_000, clock), 60_000);
});
