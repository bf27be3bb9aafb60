import assert from "node:assert/strict";
import { FakeClock } from "../../testing/fake_clock.ts";
import { Logger } from "../core/log.ts";
import { type ImageLabeler, ImagesServiceError } from "../runtime/containerd_images.ts";
import { pinImages, type PinStatusReader } from "./pin_images.ts";
import type { ImageResult } from "./scheduler.ts";

const results: ImageResult[] = [
  { image: "r/a:1", status: "pulled", attempts: 1, elapsedMs: 1, imageRef: "sha256:aaa" },
  { image: "r/b@sha256:bbb", status: "present", attempts: 0, elapsedMs: 1, imageRef: "sha256:b" },
  { image: "r/c:1", status: "failed", attempts: 3, elapsedMs: 1, error: "gone" },
];

/**
 * A runtime with the images of `ids` (name → image ID); labelled IDs read pinned when `reports`
 * is true; `code` makes every label call fail with that gRPC status.
 */
function fakeRuntime(ids: Record<string, string>, reports: boolean, code?: number) {
  const labelled: string[] = [];
  const labeler: ImageLabeler = {
    pin(name) {
      if (code !== undefined || !Object.values(ids).includes(name)) {
        return Promise.reject(
          new ImagesServiceError("Update", "/s", { code: code ?? 5, details: "not found" }),
        );
      }
      labelled.push(name);
      return Promise.resolve();
    },
  };
  const cri: PinStatusReader = {
    imageStatus: (image) =>
      Promise.resolve(
        ids[image] === undefined
          ? undefined
          : { id: ids[image], pinned: reports && labelled.includes(ids[image]) },
      ),
  };
  return { labeler, cri, labelled };
}

const ON_NODE = { "r/a:1": "sha256:aaa", "r/b@sha256:bbb": "sha256:b", "r/c:1": "sha256:c" };

function run(runtime: ReturnType<typeof fakeRuntime>) {
  const lines: Record<string, unknown>[] = [];
  const logger = new Logger({ format: "json", write: (l) => lines.push(JSON.parse(l)) });
  const clock = new FakeClock();
  const outcome = clock.run(
    pinImages(results, { ...runtime, logger, clock, runtime: "containerd 1.7.24" }),
  );
  return { outcome, lines };
}

Deno.test("pinImages labels the ID record of every image on the node, not failed ones", async () => {
  const runtime = fakeRuntime(ON_NODE, true);
  const { outcome, lines } = run(runtime);
  assert.deepEqual(await outcome, {
    pinned: ["r/a:1", "r/b@sha256:bbb"],
    unconfirmed: [],
    failed: [],
  });
  assert.deepEqual(runtime.labelled, ["sha256:aaa", "sha256:b"]);
  assert.deepEqual(lines.map((l) => [l.msg, l.image]), [
    ["image pinned", "r/a:1"],
    ["image pinned", "r/b@sha256:bbb"],
  ]);
});

Deno.test("a runtime that never reports pinned gets one log line", async () => {
  const runtime = fakeRuntime(ON_NODE, false);
  const { outcome, lines } = run(runtime);
  assert.deepEqual(await outcome, {
    pinned: [],
    unconfirmed: ["r/a:1", "r/b@sha256:bbb"],
    failed: [],
  });
  assert.equal(lines.length, 1);
  assert.equal(lines[0].level, "warn");
  assert.match(String(lines[0].msg), /does not report pinned images \(containerd does from 1\.7\)/);
  assert.equal(lines[0].runtime, "containerd 1.7.24");
  assert.equal(lines[0].images, 2);
});

Deno.test("a socket without containerd's images service gets one log line", async () => {
  const runtime = fakeRuntime(ON_NODE, true, 12);
  const { outcome, lines } = run(runtime);
  assert.match((await outcome).unsupported ?? "", /images service/);
  assert.deepEqual(lines.map((l) => l.msg), [
    "cannot pin images on this runtime; the kubelet may garbage-collect them",
  ]);
});

Deno.test("an image gone from the node is named; the others are still pinned", async () => {
  const runtime = fakeRuntime({ "r/b@sha256:bbb": "sha256:b" }, true);
  const { outcome, lines } = run(runtime);
  const result = await outcome;
  assert.deepEqual(result.pinned, ["r/b@sha256:bbb"]);
  assert.equal(result.failed[0].image, "r/a:1");
  assert.deepEqual(lines.map((l) => [l.level, l.msg, l.image]), [
    ["warn", "could not pin image", "r/a:1"],
    ["info", "image pinned", "r/b@sha256:bbb"],
  ]);
});

Deno.test("pinImages stops when the run's deadline aborts a hung call", async () => {
  const clock = new FakeClock();
  const runtime = fakeRuntime(ON_NODE, true);
  // The images service stops answering after the first image: every call waits for its signal.
  const hung: ImageLabeler = {
    pin: (name, options) =>
      runtime.labelled.length === 0
        ? runtime.labeler.pin(name, options)
        : clock.sleep(Number.MAX_SAFE_INTEGER, options?.signal),
  };
  const finish = new AbortController();
  clock.sleep(5_000).then(() => finish.abort(new Error("the run's time is up")));
  const outcome = await clock.run(pinImages(results, {
    labeler: hung,
    cri: runtime.cri,
    logger: new Logger({ format: "json", write: () => {} }),
    clock,
    runtime: "containerd 1.7.24",
    signal: finish.signal,
  }));
  assert.deepEqual(runtime.labelled, ["sha256:aaa"]);
  assert.deepEqual(outcome, { pinned: [], unconfirmed: [], failed: [] });
});
