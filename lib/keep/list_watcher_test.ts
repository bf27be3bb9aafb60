import assert from "node:assert/strict";
import { type ListChange, watchImageList, type WatchImageListOptions } from "./list_watcher.ts";
import { ConfigMapVolume } from "../../testing/configmap_volume.ts";

/** Timers that never fire within a test: only file-system events can wake the watcher. */
const EVENTS_ONLY = { pollMs: 3_600_000, backstopMs: 3_600_000 };

/** Watches `path` while `steps` run; returns what was reported. */
async function changesDuring(
  path: string,
  steps: (settle: () => Promise<void>) => Promise<void>,
  options: Partial<WatchImageListOptions> = EVENTS_ONLY,
): Promise<ListChange[]> {
  const changes: ListChange[] = [];
  const stop = new AbortController();
  const watching = watchImageList(path, {
    signal: stop.signal,
    onChange: (change) => changes.push(change),
    settleMs: 10,
    ...options,
  });
  const settle = async () => {
    const before = changes.length;
    for (let i = 0; i < 100 && changes.length === before; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };
  await new Promise((resolve) => setTimeout(resolve, 50));
  await steps(settle);
  stop.abort();
  await watching;
  return changes;
}

Deno.test("a kubelet-style swap of the ConfigMap volume is one change with the new list", async () => {
  const dir = await Deno.makeTempDir();
  const volume = new ConfigMapVolume(dir);
  await volume.write({ images: "a.example/x:1\n", other: "kept\n" });
  const changes = await changesDuring(volume.path("images"), async (settle) => {
    await volume.write({ images: "a.example/x:1\nb.example/y:2\n", other: "kept\n" });
    await settle();
    // The same content swapped in again (the kubelet rewrites when another key changes).
    await volume.write({ images: "a.example/x:1\nb.example/y:2\n", other: "changed\n" });
    await settle();
  });
  assert.deepEqual(changes, [{ kind: "changed", text: "a.example/x:1\nb.example/y:2\n" }]);
  const entries = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  assert.equal(entries.filter((n) => n.startsWith("..2")).length, 1, "one timestamped dir left");
  assert.ok(entries.includes("..data") && !entries.includes("..data_tmp"));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a key removed from the ConfigMap is reported missing, never as an empty list", async () => {
  const dir = await Deno.makeTempDir();
  const volume = new ConfigMapVolume(dir);
  await volume.write({ images: "a.example/x:1\n" });
  const changes = await changesDuring(volume.path("images"), async (settle) => {
    await volume.write({ renamed: "a.example/x:1\n" });
    await settle();
    await volume.write({ images: "" });
    await settle();
  });
  assert.deepEqual(changes.map((c) => c.kind), ["missing", "changed"]);
  assert.deepEqual(changes[1], { kind: "changed", text: "" });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a file written in place is seen by its event", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/images.txt`;
  await Deno.writeTextFile(path, "a.example/x:1\n");
  const changes = await changesDuring(path, async (settle) => {
    await Deno.writeTextFile(path, "a.example/x:1\nb.example/y:2\n");
    await settle();
  });
  assert.deepEqual(changes, [{ kind: "changed", text: "a.example/x:1\nb.example/y:2\n" }]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a symlink's target in another directory, written in place, is seen", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.mkdir(`${dir}/elsewhere`);
  await Deno.mkdir(`${dir}/watched`);
  await Deno.writeTextFile(`${dir}/elsewhere/list`, "a.example/x:1\n");
  await Deno.symlink(`${dir}/elsewhere/list`, `${dir}/watched/images.txt`);
  const changes = await changesDuring(`${dir}/watched/images.txt`, async (settle) => {
    await Deno.writeTextFile(`${dir}/elsewhere/list`, "b.example/y:2\n");
    await settle();
  });
  assert.deepEqual(changes, [{ kind: "changed", text: "b.example/y:2\n" }]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a directory that cannot be watched is polled, and the watch error said once", async () => {
  const dir = await Deno.makeTempDir();
  const errors: string[] = [];
  const changes = await changesDuring(`${dir}/later/images.txt`, async (settle) => {
    await new Promise((resolve) => setTimeout(resolve, 100));
    await Deno.mkdir(`${dir}/later`);
    await Deno.writeTextFile(`${dir}/later/images.txt`, "a.example/x:1\n");
    await settle();
  }, { pollMs: 20, backstopMs: 3_600_000, onWatchError: (error) => errors.push(error) });
  assert.deepEqual(changes, [{ kind: "changed", text: "a.example/x:1\n" }]);
  assert.equal(errors.length, 1, `one watch error: ${errors.join(" | ")}`);
  assert.ok(errors[0].includes(`${dir}/later`), `the error names the directory: ${errors[0]}`);
  await Deno.remove(dir, { recursive: true });
});
