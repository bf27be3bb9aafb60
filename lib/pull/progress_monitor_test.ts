import assert from "node:assert/strict";
import { FakeClock } from "../../testing/fake_clock.ts";
import type { CriImage, PullOptions } from "../runtime/cri_client.ts";
import { ProgressMonitor } from "./progress_monitor.ts";
import type { ImageProgress, ProgressSource } from "./progress_source.ts";
import { type ImageRuntime, type PullEvent, pullImages } from "./scheduler.ts";

/**
 * A pull on virtual time that downloads `totalBytes` at `bytesPerSecond`, optionally going
 * silent after `stallAfterBytes` on its first attempt, then unpacks for `unpackMs`.
 */
interface Download {
  totalBytes: number;
  bytesPerSecond: number;
  stallAfterBytes?: number;
  unpackMs?: number;
  /** The progress source cannot see this pull at all. */
  invisible?: boolean;
  /** The source shows bytes only in steps of this size, as containerd does (1 MiB). */
  stepBytes?: number;
  /** The source says `unpacking` once every byte has arrived (snapshots in containerd's lease). */
  showsUnpacking?: boolean;
  /** The source says `unpacking` from the first byte on, also while the download stalls. */
  unpackingWhileDownloading?: boolean;
}

/** A node on virtual time pulling images that each download as their `Download` says. */
class SimulatedNode implements ImageRuntime, ProgressSource {
  attempts = 0;
  #active = new Map<string, { startedAt: number; stall?: number }>();
  constructor(readonly clock: FakeClock, readonly download: Download) {}

  imageStatus(): Promise<CriImage | undefined> {
    return Promise.resolve(undefined);
  }

  async pullImage(image: string, options: PullOptions = {}): Promise<string> {
    this.attempts++;
    const stall = this.attempts === 1 ? this.download.stallAfterBytes : undefined;
    this.#active.set(image, { startedAt: this.clock.now(), stall });
    try {
      const seconds = (stall ?? this.download.totalBytes) / this.download.bytesPerSecond;
      await this.clock.sleep(seconds * 1000, options.signal);
      if (stall !== undefined) await this.clock.sleep(Number.MAX_SAFE_INTEGER, options.signal);
      await this.clock.sleep(this.download.unpackMs ?? 0, options.signal);
      return "ref";
    } finally {
      this.#active.delete(image);
    }
  }

  sample(images: string[]): Promise<Map<string, ImageProgress>> {
    const samples = new Map<string, ImageProgress>();
    for (const image of images) {
      const active = this.#active.get(image);
      if (!active || this.download.invisible) continue;
      const { totalBytes, bytesPerSecond, stepBytes = 1 } = this.download;
      const flowed = ((this.clock.now() - active.startedAt) / 1000) * bytesPerSecond;
      const received = Math.min(flowed, active.stall ?? totalBytes, totalBytes);
      const unpacking = this.download.unpackingWhileDownloading ||
        (this.download.showsUnpacking && received >= totalBytes);
      samples.set(image, {
        receivedBytes: received >= totalBytes
          ? totalBytes
          : Math.floor(received / stepBytes) * stepBytes,
        totalBytes,
        activeDownloads: received < totalBytes ? 1 : 0,
        ...unpacking ? { unpacking: true } : {},
      });
    }
    return Promise.resolve(samples);
  }
}

async function pullWithProgress(download: Download, stallTimeoutMs = 10_000, count = 1) {
  const clock = new FakeClock();
  const node = new SimulatedNode(clock, download);
  const events: PullEvent[] = [];
  const start = clock.now();
  const targets = Array.from({ length: count }, (_, i) => ({
    image: `img-${i}`,
    pinned: false,
    credentials: [],
  }));
  const results = await clock.run(pullImages(targets, {
    runtime: node,
    clock,
    random: () => 0.5,
    schedule: {
      initialAttemptTimeoutMs: 30_000,
      maxAttemptTimeoutMs: 60_000,
      initialDelayMs: 1_000,
      maxDelayMs: 10_000,
    },
    overallTimeoutMs: 3_600_000,
    progress: new ProgressMonitor({ source: node, stallTimeoutMs, clock }),
    progressEventIntervalMs: 10_000,
    onEvent: (event) => events.push(event),
  }));
  return { result: results[0], results, events, node, seconds: (clock.now() - start) / 1000 };
}

const MiB = 1 << 20;

Deno.test("a pull that keeps receiving is never cut by its attempt timeout", async () => {
  // 300 s of downloading against attempt timeouts of 30 s growing to 60 s.
  const { result, events, seconds } = await pullWithProgress({
    totalBytes: 300 * MiB,
    bytesPerSecond: MiB,
  });
  assert.equal(result.status, "pulled");
  assert.equal(result.attempts, 1);
  assert.equal(seconds, 300);
  const finished = events.find((e) => e.type === "attempt-finished");
  assert.ok(finished?.type === "attempt-finished");
  assert.equal(finished.receivedBytes, 300 * MiB, "every byte of the image, the last ones too");
  assert.ok(Math.abs(finished.bytesPerSecond! - MiB) < 0.05 * MiB);
});

Deno.test("a pull that goes silent mid-download is cut after the stall timeout", async () => {
  const { result, events, seconds } = await pullWithProgress({
    totalBytes: 20 * MiB,
    bytesPerSecond: MiB,
    stallAfterBytes: 5 * MiB,
  });
  assert.equal(result.status, "pulled");
  assert.equal(result.attempts, 2);
  const failed = events.find((e) => e.type === "attempt-finished" && e.error);
  assert.ok(failed?.type === "attempt-finished");
  assert.match(failed.error!, /received nothing for 10s/);
  // Silent from 5 s; cut at most one sample (1 s) after 15 s, well before the 30 s timeout.
  assert.ok(failed.durationMs >= 15_000 && failed.durationMs <= 16_000, `${failed.durationMs}`);
  // 16 s + ~1 s delay + 20 s second attempt
  assert.ok(seconds < 40, `${seconds}`);
});

Deno.test("a pull the source cannot see falls back to the wall-clock timeout", async () => {
  const { result, events } = await pullWithProgress({
    totalBytes: 40 * MiB,
    bytesPerSecond: MiB,
    invisible: true,
  });
  // 40 s of download: the first 30 s attempt is cut, the 60 s second one succeeds.
  assert.equal(result.status, "pulled");
  assert.equal(result.attempts, 2);
  const failed = events.find((e) => e.type === "attempt-finished" && e.error);
  assert.ok(failed?.type === "attempt-finished");
  assert.match(failed.error!, /timed out after 30s without progress/);
});

Deno.test("unpacking after a long download gets the attempt timeout from its own start", async () => {
  // 100 s of download, then 20 s of unpacking: within 30 s of the last progress.
  const { result } = await pullWithProgress({
    totalBytes: 100 * MiB,
    bytesPerSecond: MiB,
    unpackMs: 20_000,
  });
  assert.equal(result.status, "pulled");
  assert.equal(result.attempts, 1);
});

Deno.test("an unpack the source shows is never cut, however long it outlasts the timeouts", async () => {
  // 10 s of download, then 10 minutes of unpacking against attempt timeouts of 30 s to 60 s.
  const { result, events, seconds } = await pullWithProgress({
    totalBytes: 10 * MiB,
    bytesPerSecond: MiB,
    unpackMs: 600_000,
    showsUnpacking: true,
  });
  assert.equal(result.status, "pulled");
  assert.equal(result.attempts, 1);
  assert.equal(seconds, 610);
  const finished = events.find((e) => e.type === "attempt-finished");
  assert.ok(finished?.type === "attempt-finished" && !finished.error);
});

Deno.test("an unpack the source does not show is cut at the wall-clock timeout", async () => {
  // A source that shows only bytes (CRI-O has none at all): 45 s of unpacking outlast the first
  // attempt's 30 s after its download; the second attempt's 60 s are enough.
  const { result, events } = await pullWithProgress({
    totalBytes: 10 * MiB,
    bytesPerSecond: MiB,
    unpackMs: 45_000,
  });
  assert.equal(result.status, "pulled");
  assert.equal(result.attempts, 2);
  const failed = events.find((e) => e.type === "attempt-finished" && e.error);
  assert.ok(failed?.type === "attempt-finished");
  assert.match(failed.error!, /timed out after 30s without progress/);
});

Deno.test("a stalled download is cut even when the source already shows a layer unpacking", async () => {
  // containerd prepares a layer's extract snapshot before its download ends: a stall still counts.
  const { result, events } = await pullWithProgress({
    totalBytes: 20 * MiB,
    bytesPerSecond: MiB,
    stallAfterBytes: 5 * MiB,
    unpackingWhileDownloading: true,
  });
  assert.equal(result.status, "pulled");
  assert.equal(result.attempts, 2);
  const failed = events.find((e) => e.type === "attempt-finished" && e.error);
  assert.ok(failed?.type === "attempt-finished");
  assert.match(failed.error!, /received nothing for 10s/);
});

Deno.test("progress events come at their interval for a slow pull, none for a fast one", async () => {
  const slow = await pullWithProgress({ totalBytes: 35 * MiB, bytesPerSecond: MiB });
  const progress = slow.events.filter((e) => e.type === "progress");
  assert.equal(progress.length, 3, "at 10, 20 and 30 s");
  const last = progress.at(-1);
  assert.ok(last?.type === "progress");
  assert.equal(last.progress.totalBytes, 35 * MiB);
  assert.ok(Math.abs(last.progress.bytesPerSecond - MiB) < 0.05 * MiB);
  const fast = await pullWithProgress({ totalBytes: 5 * MiB, bytesPerSecond: MiB });
  assert.equal(fast.events.filter((e) => e.type === "progress").length, 0);
});

Deno.test("many slow pulls that show bytes in 1 MiB steps are not taken for stalls", async () => {
  // 20 images share the link at 64 KiB/s each: a step shows every 16 s, longer than the 10 s
  // stall timeout, but each image gets its fair share of a node that is receiving.
  const { results, node, seconds } = await pullWithProgress(
    { totalBytes: 8 * MiB, bytesPerSecond: 64 << 10, stepBytes: MiB },
    10_000,
    20,
  );
  assert.deepEqual(new Set(results.map((r) => r.status)), new Set(["pulled"]));
  assert.equal(node.attempts, 20, "an attempt was cut");
  assert.equal(seconds, 128);
});

Deno.test("a stall among pulls that show bytes in steps is still caught", async () => {
  const { result, events } = await pullWithProgress({
    totalBytes: 8 * MiB,
    bytesPerSecond: MiB,
    stepBytes: MiB,
    stallAfterBytes: 3 * MiB,
  });
  assert.equal(result.status, "pulled");
  assert.equal(result.attempts, 2);
  const failed = events.find((e) => e.type === "attempt-finished" && e.error);
  assert.ok(failed?.type === "attempt-finished");
  assert.match(failed.error!, /received nothing for 10s/);
});

Deno.test("a download that never shows a byte is cut at its wall-clock timeout", async () => {
  // The stall timeout (100 s) is longer than the attempt timeout (30 s): the attempt timeout wins.
  const { result, events } = await pullWithProgress(
    { totalBytes: 8 * MiB, bytesPerSecond: MiB, stepBytes: MiB, stallAfterBytes: 0 },
    100_000,
  );
  assert.equal(result.status, "pulled");
  const failed = events.find((e) => e.type === "attempt-finished" && e.error);
  assert.ok(failed?.type === "attempt-finished");
  assert.match(failed.error!, /timed out after 30s without progress/);
  assert.ok(failed.durationMs <= 31_000, `${failed.durationMs}`);
});

Deno.test("attempts that start together share one baseline sample", async () => {
  const calls: string[][] = [];
  const source: ProgressSource = {
    sample: (images) => {
      calls.push(images);
      return Promise.resolve(new Map());
    },
  };
  const clock = new FakeClock();
  const monitor = new ProgressMonitor({ source, stallTimeoutMs: 10_000, clock });
  const watches = ["a", "b", "c", "a"].map((image) => monitor.watch(image, 30_000, () => {}));
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.deepEqual(calls, [["a", "b", "c"]]);
  for (const watch of watches) watch.stop();
});
