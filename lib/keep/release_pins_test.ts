import assert from "node:assert/strict";
import { Logger } from "../core/log.ts";
import type { PulledRun } from "../pull/run_fetch.ts";
import { type PinReleaser, releaseUnlistedPins } from "./release_pins.ts";

/** A runtime whose images have these IDs, and whose owner pinned `pinned`. */
function fakeNode(ids: Record<string, string>, pinned: string[]) {
  const released: string[] = [];
  const releaser: PinReleaser = {
    pinnedBy: () => Promise.resolve([...pinned]),
    release: (name) => {
      released.push(name);
      return Promise.resolve(true);
    },
  };
  const runtime = {
    imageStatus: (image: string) =>
      Promise.resolve(ids[image] ? { id: ids[image], pinned: true } : undefined),
  };
  return { released, releaser, runtime };
}

function run(images: string[], runtime: PulledRun["runtime"], invalidLines = 0): PulledRun {
  return {
    results: images.map((image) => ({ image, status: "present", attempts: 0, elapsedMs: 0 })),
    runtime,
    signal: new AbortController().signal,
    invalidLines,
  };
}

const logger = new Logger({ write: () => {} });

Deno.test("releases the owner's pins of images no longer listed, and of a moved tag's old image", async () => {
  const node = fakeNode({ "r/a:1": "sha256:a2", "r/b:1": "sha256:b" }, [
    "sha256:a1", // r/a:1 before its tag moved
    "sha256:a2",
    "sha256:b",
    "sha256:gone", // an image that left the list
  ]);
  const released = await releaseUnlistedPins(run(["r/a:1", "r/b:1"], node.runtime), {
    releaser: node.releaser,
    owner: "me",
    logger,
  });
  assert.deepEqual(released, ["sha256:a1", "sha256:gone"]);
});

Deno.test("releases nothing when it cannot tell what is listed", async (t) => {
  await t.step("a list of only invalid lines", async () => {
    const node = fakeNode({}, ["sha256:a"]);
    const released = await releaseUnlistedPins(run([], node.runtime, 2), {
      releaser: node.releaser,
      owner: "me",
      logger,
    });
    assert.deepEqual(released, []);
  });
  await t.step("an image status that cannot be read", async () => {
    const node = fakeNode({}, ["sha256:a"]);
    const runtime = { imageStatus: () => Promise.reject(new Error("unavailable")) };
    const released = await releaseUnlistedPins(run(["r/a:1"], runtime), {
      releaser: node.releaser,
      owner: "me",
      logger,
    });
    assert.deepEqual(released, []);
  });
  await t.step("an empty list that is not empty when read again", async () => {
    const file = await Deno.makeTempFile();
    await Deno.writeTextFile(file, "r/a:1\n");
    const node = fakeNode({}, ["sha256:a"]);
    const released = await releaseUnlistedPins(run([], node.runtime), {
      releaser: node.releaser,
      owner: "me",
      logger,
      imageListFile: file,
      confirmEmptyMs: 0,
    });
    assert.deepEqual(released, []);
    await Deno.writeTextFile(file, "# nothing left\n");
    const confirmed = await releaseUnlistedPins(run([], node.runtime), {
      releaser: node.releaser,
      owner: "me",
      logger,
      imageListFile: file,
      confirmEmptyMs: 0,
    });
    assert.deepEqual(confirmed, ["sha256:a"], "a list really emptied releases everything");
    await Deno.remove(file);
  });
});
