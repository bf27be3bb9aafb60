import assert from "node:assert/strict";
import { type ListChange, watchImageList } from "./list_watcher.ts";
import { ConfigMapVolume } from "../../testing/configmap_volume.ts";

/** Watches `volume`'s key while `steps` run; returns what was reported. */
async function changesDuring(
  volume: ConfigMapVolume,
  steps: (settle: () => Promise<void>) => Promise<void>,
): Promise<ListChange[]> {
  const changes: ListChange[] = [];
  const stop = new AbortController();
  const watching = watchImageList(volume.path("images"), {
    signal: stop.signal,
    onChange: (change) => changes.push(change),
    pollMs: 20,
    settleMs: 10,
  });
  const settle = async () => {
    const before = changes.length;
    for (let i = 0; i < 50 && changes.length === before; i++) {
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
  const changes = await changesDuring(volume, async (settle) => {
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
  const changes = await changesDuring(volume, async (settle) => {
    await volume.write({ renamed: "a.example/x:1\n" });
    await settle();
    await volume.write({ images: "" });
    await settle();
  });
  assert.deepEqual(changes.map((c) => c.kind), ["missing", "changed"]);
  assert.deepEqual(changes[1], { kind: "changed", text: "" });
  await Deno.remove(dir, { recursive: true });
});
