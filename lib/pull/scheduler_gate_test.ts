import assert from "node:assert/strict";
import { FakeClock } from "../../testing/fake_clock.ts";
import type { CriImage, PullOptions } from "../runtime/cri_client.ts";
import {
  type ImageRuntime,
  type PullEvent,
  type PullGate,
  pullImages,
  type PullSchedulerOptions,
} from "./scheduler.ts";

const RATE_LIMIT = "unexpected status from HEAD request to http://r/v2/a/manifests/1: " +
  "429 Too Many Requests";

/** Pulls take 1 s; the images named in `failures` fail their first attempt with that error. */
class Runtime implements ImageRuntime {
  readonly present = new Set<string>();
  readonly pulls: Array<{ image: string; at: number }> = [];
  constructor(readonly clock: FakeClock, readonly failures: Record<string, string> = {}) {}
  imageStatus(image: string): Promise<CriImage | undefined> {
    return Promise.resolve(
      this.present.has(image)
        ? { id: image, repoTags: [image], repoDigests: [], sizeBytes: 1, pinned: false }
        : undefined,
    );
  }
  async pullImage(image: string, options: PullOptions = {}): Promise<string> {
    this.pulls.push({ image, at: this.clock.now() });
    await this.clock.sleep(1_000, options.signal);
    const failure = this.failures[image];
    if (failure) {
      delete this.failures[image];
      throw new Error(failure);
    }
    this.present.add(image);
    return image;
  }
}

/** A gate that admits images when the test says so, and records what it is told. */
class ScriptedGate implements PullGate {
  readonly told: string[] = [];
  readonly #open = new Map<string, () => void>();
  constructor(readonly held: Set<string>) {}
  admit(image: string, signal: AbortSignal): Promise<void> {
    this.told.push(`admit ${image}`);
    if (!this.held.has(image)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#open.set(image, resolve);
      signal.addEventListener("abort", () => reject(signal.reason), { once: true });
    });
  }
  release(image: string): void {
    this.held.delete(image);
    this.#open.get(image)?.();
  }
  progressed(): void {}
  landed(image: string, options: { pulled: boolean }): void {
    this.told.push(`${options.pulled ? "pulled" : "present"} ${image}`);
  }
  failed(image: string, options: { rateLimited: boolean }): void {
    this.told.push(`failed ${image}${options.rateLimited ? " (429)" : ""}`);
  }
}

function run(clock: FakeClock, runtime: Runtime, options: Partial<PullSchedulerOptions>) {
  const events: PullEvent[] = [];
  const targets = ["a", "b", "c"].filter((i) => !options.maxParallel || i !== "c").map((image) => ({
    image,
    pinned: true,
    credentials: [],
  }));
  const done = clock.run(pullImages(targets, {
    runtime,
    clock,
    random: () => 0.5,
    schedule: {
      initialAttemptTimeoutMs: 30_000,
      maxAttemptTimeoutMs: 300_000,
      initialDelayMs: 1_000,
      maxDelayMs: 600_000,
    },
    overallTimeoutMs: 60_000,
    onEvent: (event) => events.push(event),
    ...options,
  }));
  return { done, events };
}

Deno.test("an image the gate holds does not keep the others from their slots", async () => {
  const clock = new FakeClock();
  const runtime = new Runtime(clock);
  const gate = new ScriptedGate(new Set(["a"]));
  clock.sleep(5_000).then(() => gate.release("a"));
  const start = clock.now();
  const { done } = run(clock, runtime, { gate, maxParallel: 1 });
  const results = await done;
  assert.deepEqual(results.map((r) => r.status), ["pulled", "pulled"]);
  assert.deepEqual(runtime.pulls.map((p) => [p.image, p.at - start]), [["b", 0], ["a", 5_000]]);
});

Deno.test("the gate hears what landed, what was present and what a 429 cut", async () => {
  const clock = new FakeClock();
  const runtime = new Runtime(clock, { b: RATE_LIMIT, c: "connection reset by peer" });
  runtime.present.add("a");
  const gate = new ScriptedGate(new Set());
  await run(clock, runtime, { gate }).done;
  assert.deepEqual(gate.told.sort(), [
    "admit b",
    "admit b",
    "admit c",
    "admit c",
    "failed b (429)",
    "failed c",
    "present a",
    "pulled b",
    "pulled c",
  ]);
});

Deno.test("without a gate, a 429 delays the next attempt four times longer", async () => {
  const clock = new FakeClock();
  const runtime = new Runtime(clock, { b: RATE_LIMIT, c: "connection reset by peer" });
  const { done, events } = run(clock, runtime, {});
  await done;
  const delays = events.flatMap((e) => e.type === "retry-scheduled" ? [[e.image, e.delayMs]] : []);
  assert.deepEqual(delays.sort(), [["b", 4_000], ["c", 1_000]]);
});

Deno.test("with a gate, a 429 is the coordinator's business: the usual delay", async () => {
  const clock = new FakeClock();
  const runtime = new Runtime(clock, { b: RATE_LIMIT });
  const { done, events } = run(clock, runtime, { gate: new ScriptedGate(new Set()) });
  await done;
  const delays = events.flatMap((e) => e.type === "retry-scheduled" ? [e.delayMs] : []);
  assert.deepEqual(delays, [1_000]);
});

Deno.test("--overall-timeout bounds an image the gate never admits", async () => {
  const clock = new FakeClock();
  const runtime = new Runtime(clock);
  const start = clock.now();
  const { done } = run(clock, runtime, { gate: new ScriptedGate(new Set(["a"])) });
  const results = await done;
  assert.deepEqual(results.map((r) => [r.image, r.status, r.failure]), [
    ["a", "failed", "overall-timeout"],
    ["b", "pulled", undefined],
    ["c", "pulled", undefined],
  ]);
  assert.equal(clock.now() - start, 60_000);
});
