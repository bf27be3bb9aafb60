import assert from "node:assert/strict";
import {
  isPinOwner,
  ownerLabelKey,
  PIN_SET_LABEL_KEY,
  pinChange,
  PINNED_LABEL_KEY,
  releaseChange,
} from "./pin_labels.ts";

const PINNED = { [PINNED_LABEL_KEY]: "pinned" };

Deno.test("pinChange records the owner, and that it set the pin only when it was absent", () => {
  assert.deepEqual(pinChange({}, "a").set, {
    ...PINNED,
    [ownerLabelKey("a")]: "true",
    [PIN_SET_LABEL_KEY]: "true",
  });
  assert.deepEqual(pinChange(PINNED, "a").set, { ...PINNED, [ownerLabelKey("a")]: "true" });
  assert.deepEqual(pinChange({}).set, PINNED);
});

Deno.test("releaseChange clears the pin only for the last owner of a pin one of ours set", () => {
  const ours = { ...PINNED, [PIN_SET_LABEL_KEY]: "true", [ownerLabelKey("a")]: "true" };
  assert.deepEqual(releaseChange(ours, "a")?.clear, [
    ownerLabelKey("a"),
    PINNED_LABEL_KEY,
    PIN_SET_LABEL_KEY,
  ]);
  const shared = { ...ours, [ownerLabelKey("b")]: "true" };
  assert.deepEqual(releaseChange(shared, "a")?.clear, [ownerLabelKey("a")]);
  const foreign = { ...PINNED, [ownerLabelKey("a")]: "true" };
  assert.deepEqual(releaseChange(foreign, "a")?.clear, [ownerLabelKey("a")]);
  assert.equal(releaseChange(PINNED, "a"), undefined);
  assert.equal(releaseChange(ours, "b"), undefined);
});

Deno.test("isPinOwner takes DNS labels only", () => {
  assert.ok(isPinOwner("my-images"));
  for (const bad of ["", "My", "-a", "a-", "a.b", "a/b", "x".repeat(64)]) {
    assert.equal(isPinOwner(bad), false, bad);
  }
});
