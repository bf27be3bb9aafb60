import assert from "node:assert/strict";
import { Logger } from "../core/log.ts";
import { type CycleKind, keepImages, REFRESH_JITTER, refreshDelayMs } from "./keeper.ts";

Deno.test("refreshDelayMs spreads refreshes by ±REFRESH_JITTER of the interval", () => {
  const hour = 3_600_000;
  assert.equal(refreshDelayMs(hour, () => 0), Math.round(hour * (1 - REFRESH_JITTER)));
  assert.equal(refreshDelayMs(hour, () => 0.5), hour);
  assert.ok(refreshDelayMs(hour, () => 0.999999) <= hour * (1 + REFRESH_JITTER));
});

Deno.test("keepImages: a cycle at the start, one per change, never two at once, coalesced", async () => {
  const stop = new AbortController();
  const cycles: CycleKind[] = [];
  let running = 0;
  let changed: () => void = () => {};
  let release: () => void = () => {};
  const done = keepImages({
    runCycle: async (kind) => {
      assert.equal(running++, 0, "cycles never overlap");
      cycles.push(kind);
      if (cycles.length === 1) await new Promise<void>((resolve) => release = resolve);
      running--;
      if (cycles.length === 2) stop.abort();
      return 0;
    },
    watchList: (onChange, signal) => {
      changed = onChange;
      return new Promise((resolve) => signal.addEventListener("abort", () => resolve()));
    },
    refreshIntervalMs: 3_600_000,
    signal: stop.signal,
    logger: new Logger({ write: () => {} }),
  });
  await new Promise((resolve) => setTimeout(resolve, 0));
  // Three changes during the first cycle make one more cycle, not three.
  changed();
  changed();
  changed();
  release();
  await done;
  assert.deepEqual(cycles, ["change", "change"]);
});
