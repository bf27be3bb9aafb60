import assert from "node:assert/strict";
import { ResponseCache } from "./response_cache.ts";
import type { CacheKeyType } from "./provider_response.ts";

/** A clock that moves only when a test sets `time`. */
function manualClock() {
  const clock = {
    time: 1_000_000,
    now: () => clock.time,
    wallNow: () => 0,
    sleep: () => Promise.resolve(),
  };
  return clock;
}

const auth = [{ serverAddress: "gcr.io", username: "u", password: "p" }];
const answer = (cacheKeyType: CacheKeyType, cacheDurationMs?: number) => ({
  cacheKeyType,
  cacheDurationMs,
  auth,
});

Deno.test("ResponseCache keys answers by image, registry or globally", () => {
  const clock = manualClock();
  const image = new ResponseCache(clock);
  image.put("gcr.io/p/a", answer("Image", 60_000), 0);
  assert.deepEqual(image.get("gcr.io/p/a"), auth);
  assert.equal(image.get("gcr.io/p/b"), undefined);

  const registry = new ResponseCache(clock);
  registry.put("gcr.io:443/p/a", answer("Registry", 60_000), 0);
  assert.deepEqual(registry.get("gcr.io:443/q/b"), auth);
  assert.equal(registry.get("gcr.io/p/a"), undefined);

  const global = new ResponseCache(clock);
  global.put("gcr.io/p/a", answer("Global", 60_000), 0);
  assert.deepEqual(global.get("quay.io/x/y"), auth);
});

Deno.test("ResponseCache expires entries after their duration, as the kubelet does", () => {
  const clock = manualClock();
  const cache = new ResponseCache(clock);
  cache.put("gcr.io/p/a", answer("Registry", 1_000), 0);
  clock.time += 1_000;
  assert.deepEqual(cache.get("gcr.io/p/a"), auth, "alive at exactly its expiry");
  clock.time += 1;
  assert.equal(cache.get("gcr.io/p/a"), undefined);
});

Deno.test("ResponseCache uses defaultCacheDuration only when the answer has none; 0 stores nothing", () => {
  const clock = manualClock();
  const cache = new ResponseCache(clock);
  cache.put("gcr.io/p/a", answer("Image"), 5_000);
  clock.time += 5_000;
  assert.deepEqual(cache.get("gcr.io/p/a"), auth);
  cache.put("gcr.io/p/b", answer("Image", 0), 5_000);
  assert.equal(cache.get("gcr.io/p/b"), undefined);
  cache.put("gcr.io/p/c", answer("Image"), 0);
  assert.equal(cache.get("gcr.io/p/c"), undefined);
});

Deno.test("ResponseCache forgets a refused answer, but not one stored after it was looked up", () => {
  const clock = manualClock();
  const cache = new ResponseCache(clock);
  cache.put("gcr.io/p/a", answer("Registry", 60_000), 0);
  const lookedUpAt = clock.time;
  clock.time += 10;
  cache.forget("gcr.io/p/b", lookedUpAt);
  assert.equal(cache.get("gcr.io/p/a"), undefined, "the registry's answer is asked again");

  cache.put("gcr.io/p/a", answer("Registry", 60_000), 0);
  cache.forget("gcr.io/p/a", lookedUpAt);
  assert.deepEqual(cache.get("gcr.io/p/a"), auth, "renewed since: kept");
});
