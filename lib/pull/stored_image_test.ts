import assert from "node:assert/strict";
import { FakeClock } from "../../testing/fake_clock.ts";
import type { CriImage } from "../runtime/cri_client.ts";
import { lookUpStoredImage } from "./stored_image.ts";

const IMAGE: CriImage = {
  id: "sha256:abc",
  repoTags: ["r/a:1"],
  repoDigests: [],
  sizeBytes: 4096,
  pinned: false,
};

/** A runtime whose socket fails the first `failures` questions, then answers. */
function flakyRuntime(clock: FakeClock, failures: number) {
  const asked: number[] = [];
  return {
    asked,
    imageStatus(): Promise<CriImage | undefined> {
      asked.push(clock.now());
      if (asked.length <= failures) {
        return Promise.reject(new Error("14 UNAVAILABLE: No connection established"));
      }
      return Promise.resolve(IMAGE);
    },
  };
}

Deno.test("a runtime that answers at once is asked once", async () => {
  const clock = new FakeClock();
  const runtime = flakyRuntime(clock, 0);
  assert.deepEqual(await clock.run(lookUpStoredImage(runtime, "r/a:1", { clock })), IMAGE);
  assert.equal(runtime.asked.length, 1);
});

Deno.test("a socket that is away for a moment is asked again, with growing waits", async () => {
  const clock = new FakeClock();
  const start = clock.now();
  const runtime = flakyRuntime(clock, 4);
  assert.deepEqual(await clock.run(lookUpStoredImage(runtime, "r/a:1", { clock })), IMAGE);
  assert.deepEqual(runtime.asked.map((t) => t - start), [0, 100, 300, 700, 1_500]);
});

Deno.test("a socket that stays away is given up after the patience", async () => {
  const clock = new FakeClock();
  const start = clock.now();
  const runtime = flakyRuntime(clock, Infinity);
  const found = await clock.run(lookUpStoredImage(runtime, "r/a:1", { clock, patienceMs: 5_000 }));
  assert.equal(found, undefined);
  assert.ok(clock.now() - start <= 5_000, `asked until ${clock.now() - start} ms`);
  assert.ok(runtime.asked.length >= 4, `asked ${runtime.asked.length} times`);
});

Deno.test("an aborted run stops asking", async () => {
  const clock = new FakeClock();
  const runtime = flakyRuntime(clock, Infinity);
  const stop = new AbortController();
  stop.abort(new Error("interrupted"));
  const found = await clock.run(
    lookUpStoredImage(runtime, "r/a:1", { clock, signal: stop.signal }),
  );
  assert.equal(found, undefined);
  assert.equal(runtime.asked.length, 1);
});
