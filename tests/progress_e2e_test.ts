/**
 * Stall detection by progress, end to end: the real program against a real containerd whose
 * content service shows each pull's bytes, and a real registry behind the fault proxy.
 */
import assert from "node:assert/strict";
import {
  type Stack,
  startContainerd,
  startStack,
  testEachContainerd,
} from "../testing/stack/stack.ts";
import { jsonFetchArgs, type ProgramRun, runProgram } from "../testing/prefetcher_process.ts";

function fetchOn(stack: Stack, args: string[]): Promise<ProgramRun> {
  return runProgram([
    ...jsonFetchArgs(stack.containerd.socket),
    ...args,
  ]);
}

function describe(run: ProgramRun): string {
  return `exit ${run.code}\nstdout:\n${run.stdout}\nstderr:\n${run.stderr}`;
}

const MiB = 1 << 20;

testEachContainerd("fetch watches pull progress on containerd", async (t, containerd) => {
  await using stack = await startStack({ containerd });

  await t.step(
    "a big image on a slow link arrives in one attempt, with no bytes wasted",
    async () => {
      // 12 MiB at 1.5 MiB/s: about 8 s, several times the 2 s maximum attempt timeout.
      const image = await stack.pushImage({
        repository: "slow/big",
        tag: "v1",
        layers: 3,
        layerBytes: 4 * MiB,
      });
      stack.proxy.setFaults({ bandwidthBytesPerSecond: 1.5 * MiB });
      stack.proxy.resetCounters();
      const run = await fetchOn(stack, [
        "--initial-pull-attempt-timeout",
        "1s",
        "--max-pull-attempt-timeout",
        "2s",
        "--progress-interval",
        "2s",
        image.reference(stack.proxy.host),
      ]);
      stack.proxy.setFaults({});
      assert.equal(run.code, 0, describe(run));
      const [result] = run.summary!.images;
      assert.equal(result.status, "pulled", describe(run));
      assert.equal(result.attempts, 1, describe(run));
      assert.ok(result.elapsedMs > 4_000, `the link cap did not hold: ${result.elapsedMs} ms`);
      const served = stack.proxy.bytesServed;
      assert.ok(
        served >= image.sizeBytes && served < image.sizeBytes * 1.05,
        `registry served ${served} bytes for a ${image.sizeBytes}-byte image`,
      );
      // Progress lines while it downloads, each with the numbers a person needs.
      const progress = run.events.filter((e) => e.msg === "pull progress");
      assert.ok(progress.length >= 1, describe(run));
      for (const line of progress) {
        for (const field of ["image", "attempt", "received", "total", "rate", "elapsed"]) {
          assert.ok(
            line[field] !== undefined,
            `progress line without ${field}: ${JSON.stringify(line)}`,
          );
        }
      }
      const pulled = run.events.find((e) => e.msg === "image pulled");
      assert.ok(pulled?.received && pulled.rate, JSON.stringify(pulled));
    },
  );

  await t.step("a fast pull logs no progress lines", async () => {
    const image = await stack.pushImage({ repository: "fast/small", tag: "v1", layerBytes: MiB });
    const run = await fetchOn(stack, [
      "--progress-interval",
      "2s",
      image.reference(stack.proxy.host),
    ]);
    assert.equal(run.summary?.pulled, 1, describe(run));
    assert.equal(run.events.filter((e) => e.msg === "pull progress").length, 0);
  });

  await t.step(
    "a blob that stalls midway is cut at the stall timeout, long before the attempt timeout",
    async () => {
      const image = await stack.pushImage({
        repository: "stall/mid",
        tag: "v1",
        layerBytes: 6 * MiB,
      });
      // The layer's response stops after 3.5 MiB and the connection stays open.
      stack.proxy.setFaults({ stall: { count: 1, afterBytes: 3.5 * MiB } });
      const run = await fetchOn(stack, [
        "--stall-timeout",
        "3s",
        "--initial-pull-attempt-timeout",
        "2m",
        "--initial-pull-attempt-delay",
        "200ms",
        image.reference(stack.proxy.host),
      ]);
      stack.proxy.setFaults({});
      assert.equal(run.code, 0, describe(run));
      const [result] = run.summary!.images;
      assert.equal(result.status, "pulled", describe(run));
      assert.equal(result.attempts, 2, describe(run));
      const failed = run.events.find((e) => e.msg === "pull attempt failed");
      assert.match(String(failed?.error), /received nothing for 3s/, describe(run));
      // Detected within the stall timeout plus a sample or two.
      const durationMs = Number(String(failed?.duration).replace(/s$/, "")) * 1000;
      assert.ok(durationMs < 7_000, `the stalled attempt lasted ${failed?.duration}`);
      assert.ok(result.elapsedMs < 20_000, `took ${result.elapsedMs} ms in all`);
    },
  );

  await t.step("--progress off says so once and keeps the wall-clock timeouts", async () => {
    const image = await stack.pushImage({ repository: "off/plain", tag: "v1" });
    const run = await fetchOn(stack, ["--progress", "off", image.reference(stack.proxy.host)]);
    assert.equal(run.summary?.pulled, 1, describe(run));
    const notes = run.events.filter((e) => /progress watching is off/.test(e.msg));
    assert.equal(notes.length, 1);
    assert.equal(run.events.find((e) => e.msg === "fetch started")?.progress, "off");
  });
});

testEachContainerd(
  "on a socket without containerd's content service, fetch says so once and uses the timeouts",
  async (_t, containerd) => {
    await using stack = await startStack({ containerd });
    // A real containerd whose socket serves CRI but not the content service (as CRI-O's does not).
    await using runtime = await startContainerd({
      registryHosts: [stack.proxy.host],
      disabledPlugins: ["io.containerd.grpc.v1.content"],
      binary: stack.containerdBinaries.containerd,
      ctrBinary: stack.containerdBinaries.ctr,
    });
    const image = await stack.pushImage({
      repository: "nocontent/app",
      tag: "v1",
      layerBytes: MiB,
    });
    stack.proxy.setFaults({ stall: { count: 1, afterBytes: 256 << 10 } });
    const run = await runProgram([
      ...jsonFetchArgs(runtime.socket),
      "--initial-pull-attempt-timeout",
      "2s",
      "--initial-pull-attempt-delay",
      "200ms",
      image.reference(stack.proxy.host),
    ]);
    stack.proxy.setFaults({});
    assert.equal(run.code, 0, describe(run));
    const notes = run.events.filter((e) => /cannot watch pull progress/.test(e.msg));
    assert.equal(notes.length, 1, describe(run));
    assert.match(String(notes[0].reason), /content service/);
    assert.equal(run.events.find((e) => e.msg === "fetch started")?.progress, "off");
    // The stalled first attempt ends at its wall-clock timeout; the second one pulls the image.
    const [result] = run.summary!.images;
    assert.equal(result.status, "pulled", describe(run));
    assert.equal(result.attempts, 2);
    const failed = run.events.find((e) => e.msg === "pull attempt failed");
    assert.match(String(failed?.error), /timed out after 2s$/);
  },
);
