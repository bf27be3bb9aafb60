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

/** A runtime whose records are `records`; labelled names read pinned when `reports` is true. */
function fakeRuntime(records: string[], reports: boolean, code?: number) {
  const labelled: string[] = [];
  const labeler: ImageLabeler = {
    pin(name) {
      if (code !== undefined || !records.includes(name)) {
        return Promise.reject(
          new ImagesServiceError("Update", "/s", { code: code ?? 5, details: "not found" }),
        );
      }
      labelled.push(name);
      return Promise.resolve();
    },
  };
  const idOf: Record<string, string> = { "r/a:1": "sha256:aaa", "r/b@sha256:bbb": "sha256:b" };
  const cri: PinStatusReader = {
    imageStatus: (image) =>
      Promise.resolve({
        pinned: reports && (labelled.includes(image) || labelled.includes(idOf[image])),
      }),
  };
  return { labeler, cri, labelled };
}

function run(runtime: ReturnType<typeof fakeRuntime>) {
  const lines: Record<string, unknown>[] = [];
  const logger = new Logger({ format: "json", write: (l) => lines.push(JSON.parse(l)) });
  const clock = new FakeClock();
  const outcome = clock.run(
    pinImages(results, { ...runtime, logger, clock, runtime: "containerd 1.7.24" }),
  );
  return { outcome, lines };
}

Deno.test("pinImages labels the images on the node under their listed names, not failed ones", async () => {
  const runtime = fakeRuntime(["r/a:1", "r/b@sha256:bbb", "r/c:1"], true);
  const { outcome, lines } = run(runtime);
  assert.deepEqual(await outcome, {
    pinned: ["r/a:1", "r/b@sha256:bbb"],
    unconfirmed: [],
    failed: [],
  });
  assert.deepEqual(runtime.labelled, ["r/a:1", "r/b@sha256:bbb"]);
  assert.deepEqual(lines.map((l) => [l.msg, l.image]), [
    ["image pinned", "r/a:1"],
    ["image pinned", "r/b@sha256:bbb"],
  ]);
});

Deno.test("pinImages falls back to the image ID record when the listed name has none", async () => {
  const runtime = fakeRuntime(["sha256:aaa", "r/b@sha256:bbb"], true);
  const { outcome } = run(runtime);
  assert.deepEqual((await outcome).pinned, ["r/a:1", "r/b@sha256:bbb"]);
  assert.deepEqual(runtime.labelled, ["sha256:aaa", "r/b@sha256:bbb"]);
});

Deno.test("a runtime that never reports pinned gets one log line", async () => {
  const runtime = fakeRuntime(["r/a:1", "r/b@sha256:bbb"], false);
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
  const runtime = fakeRuntime([], true, 12);
  const { outcome, lines } = run(runtime);
  assert.match((await outcome).unsupported ?? "", /images service/);
  assert.deepEqual(lines.map((l) => l.msg), [
    "cannot pin images on this runtime; the kubelet may garbage-collect them",
  ]);
});

Deno.test("an image that cannot be labelled is named; the others are still pinned", async () => {
  const runtime = fakeRuntime(["r/b@sha256:bbb"], true);
  const { outcome, lines } = run(runtime);
  const result = await outcome;
  assert.deepEqual(result.pinned, ["r/b@sha256:bbb"]);
  assert.equal(result.failed[0].image, "r/a:1");
  assert.deepEqual(lines.map((l) => [l.level, l.msg, l.image]), [
    ["warn", "could not pin image", "r/a:1"],
    ["info", "image pinned", "r/b@sha256:bbb"],
  ]);
});
