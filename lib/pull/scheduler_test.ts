import assert from "node:assert/strict";
import { FakeClock } from "../../testing/fake_clock.ts";
import type { CriAuth, CriImage, PullOptions } from "../runtime/cri_client.ts";
import { CriError } from "../runtime/cri_error.ts";
import { ProgressMonitor } from "./progress_monitor.ts";
import {
  type ImageRuntime,
  type PullEvent,
  pullImages,
  type PullSchedulerOptions,
  type PullTarget,
} from "./scheduler.ts";

/** What one scripted pull attempt does: take `ms` then succeed, fail, or never answer. */
type Step = { ms: number; fail?: CriError | Error } | "stall";

/** A runtime on virtual time whose pulls follow a script per image. */
class ScriptedRuntime implements ImageRuntime {
  readonly present = new Set<string>();
  readonly pulls: Array<{ image: string; auth?: CriAuth; at: number }> = [];
  constructor(readonly clock: FakeClock, readonly script: Record<string, Step[]>) {}

  imageStatus(image: string): Promise<CriImage | undefined> {
    const has = this.present.has(image);
    return Promise.resolve(
      has
        ? {
          id: `sha256:${image}`,
          repoTags: [image],
          repoDigests: [],
          sizeBytes: 1000,
          pinned: false,
        }
        : undefined,
    );
  }

  async pullImage(image: string, options: PullOptions = {}): Promise<string> {
    this.pulls.push({ image, auth: options.auth, at: this.clock.now() });
    const step = this.script[image]?.shift() ?? { ms: 1_000 };
    if (step === "stall") {
      await this.clock.sleep(Number.MAX_SAFE_INTEGER, options.signal);
      throw new Error("unreachable");
    }
    await this.clock.sleep(step.ms, options.signal);
    if (step.fail) throw step.fail;
    this.present.add(image);
    return image;
  }
}

function criError(code: number, details: string): CriError {
  return new CriError("PullImage", { code, details, message: details });
}

function target(image: string, extra: Partial<PullTarget> = {}): PullTarget {
  return { image, pinned: false, credentials: [], ...extra };
}

function setup(
  script: Record<string, Step[]> = {},
  options: Partial<PullSchedulerOptions> = {},
  clock = new FakeClock(),
) {
  const runtime = new ScriptedRuntime(clock, script);
  const events: PullEvent[] = [];
  const start = clock.now();
  const run = (targets: PullTarget[]) =>
    clock.run(pullImages(targets, {
      runtime,
      clock,
      random: () => 0.5,
      schedule: {
        initialAttemptTimeoutMs: 30_000,
        maxAttemptTimeoutMs: 300_000,
        initialDelayMs: 1_000,
        maxDelayMs: 600_000,
      },
      overallTimeoutMs: 20 * 60_000,
      onEvent: (event) => events.push(event),
      ...options,
    }));
  return { clock, runtime, events, run, elapsed: () => clock.now() - start };
}

Deno.test("all images are pulled at once by default", async () => {
  const t = setup({ a: [{ ms: 10_000 }], b: [{ ms: 10_000 }], c: [{ ms: 10_000 }] });
  const results = await t.run([target("a"), target("b"), target("c")]);
  assert.deepEqual(results.map((r) => r.status), ["pulled", "pulled", "pulled"]);
  assert.equal(t.elapsed(), 10_000);
});

Deno.test("--max-parallel bounds how many pulls run at once", async () => {
  const t = setup({ a: [{ ms: 10_000 }], b: [{ ms: 10_000 }], c: [{ ms: 10_000 }] }, {
    maxParallel: 2,
  });
  await t.run([target("a"), target("b"), target("c")]);
  assert.equal(t.elapsed(), 20_000);
  assert.deepEqual(t.runtime.pulls.map((p) => p.at - t.clock.now() + 20_000), [0, 0, 10_000]);
});

Deno.test("a stalled attempt is cancelled at its timeout and retried with a doubled one", async () => {
  const t = setup({ a: ["stall", "stall", { ms: 5_000 }] });
  const [result] = await t.run([target("a")]);
  assert.equal(result.status, "pulled");
  assert.equal(result.attempts, 3);
  const started = t.events.filter((e) => e.type === "attempt-started");
  assert.deepEqual(started.map((e) => e.timeoutMs), [30_000, 60_000, 120_000]);
  const delays = t.events.flatMap((e) => e.type === "retry-scheduled" ? [e.delayMs] : []);
  assert.deepEqual(delays, [1_000, 2_000]);
  // 30 s + 1 s + 60 s + 2 s + 5 s
  assert.equal(t.elapsed(), 98_000);
  const errors = t.events.flatMap((e) => e.type === "attempt-finished" ? [e.error] : []);
  assert.deepEqual(errors, [
    "the attempt timed out after 30s",
    "the attempt timed out after 1m",
    undefined,
  ]);
});

Deno.test("attempt timeouts stop at their maximum and the overall timeout ends everything", async () => {
  const t = setup({ a: Array(100).fill("stall") }, {
    schedule: {
      initialAttemptTimeoutMs: 10_000,
      maxAttemptTimeoutMs: 40_000,
      initialDelayMs: 1_000,
      maxDelayMs: 4_000,
    },
    overallTimeoutMs: 300_000,
  });
  const [result] = await t.run([target("a")]);
  assert.equal(result.status, "failed");
  assert.equal(result.failure, "overall-timeout");
  assert.ok(t.elapsed() <= 300_000, `ran ${t.elapsed()} ms past a 300 s overall timeout`);
  const timeouts = t.events.flatMap((e) => e.type === "attempt-started" ? [e.timeoutMs] : []);
  assert.deepEqual(timeouts.slice(0, 5), [10_000, 20_000, 40_000, 40_000, 40_000]);
  // The last attempt is cut to what is left of the overall timeout.
  assert.ok(timeouts.at(-1)! <= 40_000);
  const delays = t.events.flatMap((e) => e.type === "retry-scheduled" ? [e.delayMs] : []);
  assert.ok(delays.every((d) => d <= 4_000));
});

Deno.test("an image the registry does not have fails at once, the others are pulled", async () => {
  const t = setup({ missing: [{ ms: 100, fail: criError(5, "missing:latest: not found") }] });
  const results = await t.run([target("missing"), target("ok")]);
  assert.equal(results[0].status, "failed");
  assert.equal(results[0].failure, "permanent");
  assert.equal(results[0].attempts, 1);
  assert.equal(results[0].error, "missing:latest: not found");
  assert.equal(results[1].status, "pulled");
});

Deno.test("server errors are retried until the pull works", async () => {
  const unavailable = criError(2, "unexpected status code 503 Service Unavailable");
  const t = setup({
    a: [{ ms: 10, fail: unavailable }, { ms: 10, fail: unavailable }, { ms: 10 }],
  });
  const [result] = await t.run([target("a")]);
  assert.equal(result.status, "pulled");
  assert.equal(result.attempts, 3);
});

Deno.test("a pinned image already on the node is not pulled; a latest one is", async () => {
  const t = setup();
  t.runtime.present.add("pinned:1");
  t.runtime.present.add("floating:latest");
  const results = await t.run([target("pinned:1", { pinned: true }), target("floating:latest")]);
  assert.deepEqual(results.map((r) => r.status), ["present", "pulled"]);
  assert.deepEqual(t.runtime.pulls.map((p) => p.image), ["floating:latest"]);
});

Deno.test("--pull-policy overrides the per-image default both ways", async () => {
  for (const [pullPolicy, expected] of [["Always", 2], ["IfNotPresent", 0]] as const) {
    const t = setup({}, { pullPolicy });
    t.runtime.present.add("pinned:1");
    t.runtime.present.add("floating:latest");
    await t.run([target("pinned:1", { pinned: true }), target("floating:latest")]);
    assert.equal(t.runtime.pulls.length, expected, pullPolicy);
  }
});

Deno.test("credentials are tried in turn within one attempt", async () => {
  const denied = criError(2, "failed to authorize: 401 Unauthorized");
  const t = setup({ a: [{ ms: 10, fail: denied }, { ms: 10 }] });
  const credentials = [{ username: "wrong" }, { username: "right" }];
  const [result] = await t.run([target("a", { credentials })]);
  assert.equal(result.status, "pulled");
  assert.equal(result.attempts, 1);
  assert.deepEqual(t.runtime.pulls.map((p) => p.auth?.username), ["wrong", "right"]);
});

Deno.test("refused credentials fail the image without retrying", async () => {
  const denied = () => ({ ms: 10, fail: criError(2, "failed to authorize: 401 Unauthorized") });
  const t = setup({ a: [denied(), denied()] });
  const [result] = await t.run([target("a", { credentials: [{ username: "x" }] })]);
  assert.equal(result.status, "failed");
  assert.equal(result.failure, "permanent");
  assert.equal(t.runtime.pulls.length, 1);
});

Deno.test("refused plugin credentials are renewed once, then the image fails", async () => {
  const denied = () => ({ ms: 10, fail: criError(2, "failed to authorize: 401 Unauthorized") });
  for (const [script, expected] of [[[denied()], "pulled"], [[denied(), denied()], "failed"]]) {
    const t = setup({ a: script as Step[] });
    const lookups: Array<boolean | undefined> = [];
    const lookupCredentials: PullTarget["lookupCredentials"] = (_signal, options) => {
      lookups.push(options?.renew);
      return Promise.resolve([{ username: `plugin-${lookups.length}` }]);
    };
    const [result] = await t.run([target("a", { lookupCredentials })]);
    assert.equal(result.status, expected);
    assert.equal(result.attempts, 2);
    if (expected === "failed") assert.equal(result.failure, "permanent");
    assert.deepEqual(lookups, [false, true], "the second lookup renews");
    assert.deepEqual(t.runtime.pulls.map((p) => p.auth?.username), ["plugin-1", "plugin-2"]);
    const retries = t.events.flatMap((e) => e.type === "retry-scheduled" ? [e] : []);
    assert.deepEqual(
      retries.map((e) => [e.delayMs, e.renewCredentials]),
      [[0, true]],
      "renewed credentials are tried at once, and the event says so",
    );
  }
});

Deno.test("a refusal with no plugin credentials looked up is not retried", async () => {
  const denied = () => ({ ms: 10, fail: criError(2, "failed to authorize: 401 Unauthorized") });
  const t = setup({ a: [denied(), denied()] });
  const [result] = await t.run([target("a", { lookupCredentials: () => Promise.resolve([]) })]);
  assert.equal(result.failure, "permanent");
  assert.equal(t.runtime.pulls.length, 1);
});

Deno.test("an image the registry does not have is not retried, with plugin credentials too", async () => {
  const t = setup({ a: [{ ms: 10, fail: criError(5, "a: not found") }] });
  const lookupCredentials = () => Promise.resolve([{ username: "plugin" }]);
  const [result] = await t.run([target("a", { lookupCredentials })]);
  assert.equal(result.failure, "permanent");
  assert.equal(t.runtime.pulls.length, 1);
});

Deno.test("a wall-clock step neither cuts an attempt nor stretches one", async () => {
  const t = setup({ a: ["stall", { ms: 5_000 }] });
  const wallStart = t.clock.wallNow();
  // chrony steps a fresh node's clock an hour forward, then two hours back, mid-attempt.
  t.clock.sleep(10_000).then(() => t.clock.stepWallClock(3_600_000));
  t.clock.sleep(20_000).then(() => t.clock.stepWallClock(-7_200_000));
  const [result] = await t.run([target("a")]);
  assert.equal(result.status, "pulled");
  const finished = t.events.filter((e) => e.type === "attempt-finished");
  assert.deepEqual(finished.map((e) => e.durationMs), [30_000, 5_000], "timed as if no step");
  assert.equal(t.elapsed(), 36_000, "30 s attempt + 1 s delay + 5 s attempt");
  assert.equal(result.elapsedMs, 36_000);
  // What people read keeps the wall clock's word: the second attempt began after both steps.
  assert.equal(finished[0].startedAt, wallStart);
  assert.equal(finished[1].startedAt, wallStart + 31_000 - 3_600_000);
});

Deno.test("an interrupt ends every unfinished image promptly as interrupted", async () => {
  const interrupt = new AbortController();
  const t = setup({ slow: ["stall"], fast: [{ ms: 1_000 }] }, { signal: interrupt.signal });
  const work = t.run([target("slow"), target("fast")]);
  t.clock.sleep(5_000).then(() => interrupt.abort(new Error("received SIGTERM")));
  const results = await work;
  assert.equal(t.elapsed(), 5_000);
  assert.deepEqual(results.map((r) => [r.status, r.failure]), [
    ["failed", "interrupted"],
    ["pulled", undefined],
  ]);
});

Deno.test("every attempt is reported once with an identifier, start time and duration", async () => {
  let id = 0;
  const t = setup({ a: ["stall", { ms: 2_000 }] }, { newAttemptId: () => `id-${++id}` });
  await t.run([target("a")]);
  const finished = t.events.filter((e) => e.type === "attempt-finished");
  assert.deepEqual(finished.map((e) => [e.attemptId, e.attempt, e.durationMs]), [
    ["id-1", 1, 30_000],
    ["id-2", 2, 2_000],
  ]);
  assert.equal(finished[1].sizeBytes, 1000);
});

Deno.test("a pull done before any progress sample saw it reports no bytes rather than 0 B", async () => {
  const clock = new FakeClock();
  const progress = new ProgressMonitor({
    source: { sample: () => Promise.resolve(new Map()) },
    stallTimeoutMs: 10_000,
    clock,
  });
  const t = setup({ quick: [{ ms: 400 }] }, { progress }, clock);
  const results = await t.run([target("quick")]);
  assert.equal(results[0].status, "pulled");
  const finished = t.events.find((e) => e.type === "attempt-finished");
  assert.ok(finished && finished.type === "attempt-finished");
  assert.equal(finished.receivedBytes, undefined, "no sample saw the image: received is unknown");
  assert.equal(finished.bytesPerSecond, undefined, "and so is the rate");
  assert.equal(finished.sizeBytes, 1000, "the stored size is reported");
});
