/**
 * `fetch` whose runtime socket goes away gracefully and comes back mid-run: a real containerd
 * behind a Node.js `@grpc/grpc-js` pass-through on a UNIX socket, which stops with a GOAWAY to
 * every connection (as grpc-go's GracefulStop and connection-age limits do) and listens again.
 * `fetch` runs with glibc's allocator perturbed (`MALLOC_PERTURB_=165`), so denoland/deno#36788
 * would abort it at the GOAWAY that reaches its idle connection; the run must instead finish with
 * every image on the node, every attempt accounted for, and every pulled image's size known.
 */
import assert from "node:assert/strict";
import { CriClient } from "../lib/runtime/cri_client.ts";
import type { MetricsResultJson } from "../lib/metrics/protocol.ts";
import { startMetricsServerProcess } from "../testing/metrics_server_process.ts";
import { jsonFetchArgs, type ProgramRun, spawnProgram } from "../testing/prefetcher_process.ts";
import { startCriPassthrough } from "../testing/grpc_peers/peers.ts";
import { startStack } from "../testing/stack/stack.ts";
import { waitUntil } from "../testing/stack/wait_until.ts";

const MiB = 1 << 20;

function describe(run: ProgramRun): string {
  return `exit ${run.code}\nstdout:\n${run.stdout}\nstderr:\n${run.stderr}`;
}

Deno.test("fetch, perturbed, survives its runtime socket's GOAWAYs and comes back to it", async () => {
  await using stack = await startStack();
  await using passthrough = await startCriPassthrough(
    `${stack.workDir}/passthrough.sock`,
    stack.containerd.socket,
  );
  await using server = await startMetricsServerProcess();
  const images = await Promise.all(
    [1, 2, 3].map((i) =>
      stack.pushImage({ repository: `goaway/img-${i}`, tag: "v1", layerBytes: 3 * MiB })
    ),
  );
  const refs = images.map((i) => i.reference(stack.proxy.host));
  // Every image's first layer request hangs, so every first attempt is cut as stalled and the
  // run waits between attempts with no call in flight; then the layers come slowly.
  stack.proxy.setFaults({
    stall: {
      count: images.length,
      match: new RegExp(`/blobs/(?:${images.map((i) => i.layers[0].digest).join("|")})$`),
    },
    bandwidthBytesPerSecond: 2 * MiB,
  });
  const node = "goaway-node";
  const running = spawnProgram([
    ...jsonFetchArgs(passthrough.socket),
    "--node-name",
    node,
    "--metrics-endpoint",
    `127.0.0.1:${server.grpcPort}`,
    "--stall-timeout",
    "1s",
    "--initial-pull-attempt-timeout",
    "20s",
    "--initial-pull-attempt-delay",
    "1500ms",
    "--max-pull-attempt-delay",
    "2s",
    "--overall-timeout",
    "60s",
    ...refs,
  ], { env: { MALLOC_PERTURB_: "165" } });
  let exited = false;
  running.finished.then(() => exited = true);

  const pulls = "/runtime.v1.ImageService/PullImage";
  const pullsStarted = (n: number) =>
    waitUntil(async () => {
      const stats = await passthrough.stats();
      return (stats.calls[pulls] ?? 0) >= n && (stats.inFlightBy[pulls] ?? 0) > 0;
    }, { timeoutMs: 20_000, abandon: () => exited });
  if (!await pullsStarted(images.length)) {
    assert.fail(
      `the first attempts never reached the runtime: ${describe(await running.finished)}`,
    );
  }
  // 1. A GOAWAY to a connection with no call in flight: the one Deno aborts on.
  const idle = await passthrough.bounce(1_000, { whenIdle: true });
  assert.equal(idle.inFlight, 0);
  // 2. A GOAWAY while the second attempts pull: they finish on the old connection, and the
  //    socket stays away for a while after, when fetch asks for the images' sizes.
  if (!await pullsStarted(2 * images.length)) {
    assert.fail(`the second attempts did not get going: ${describe(await running.finished)}`);
  }
  const midPull = await passthrough.bounce(1_500);
  assert.ok(midPull.inFlight > 0, "no pull was in flight at the second GOAWAY");
  console.log("GOAWAYs:", JSON.stringify({ idle, midPull }));

  const run = await running.finished;
  assert.equal(run.code, 0, describe(run));
  await assertEveryImageAndAttempt(run, refs, stack.containerd.socket, describe(run));
  const stored = (await (await fetch(`${server.url}/metrics`)).json() as MetricsResultJson[])
    .filter((r) => r.node === node);
  const started = run.events.filter((e) => e.msg === "pull attempt started");
  assert.deepEqual(
    stored.filter((r) => Number(r.attempt ?? 0) > 0).map((r) => r.attempt_id).sort(),
    started.map((e) => e.attempt_id).sort(),
    "the metrics server has every attempt, once",
  );
  for (const result of stored.filter((r) => r.outcome === "pulled")) {
    assert.ok(Number(result.size_bytes) > 0, `no size: ${JSON.stringify(result)}`);
  }
});

/** Every image pulled and on the node, with its size; every started attempt finished. */
async function assertEveryImageAndAttempt(
  run: ProgramRun,
  refs: string[],
  runtimeSocket: string,
  why: string,
): Promise<void> {
  const summary = run.summary;
  assert.ok(summary, `no summary: ${why}`);
  assert.deepEqual(summary.images.map((i) => i.image).sort(), [...refs].sort());
  assert.equal(summary.pulled, refs.length, why);
  using cri = new CriClient(runtimeSocket);
  let total = 0;
  for (const image of summary.images) {
    assert.equal(image.status, "pulled", `${image.image}: ${image.error}`);
    assert.ok(image.attempts >= 2, `${image.image}: its first attempt did not stall: ${why}`);
    const onNode = await cri.imageStatus(image.image);
    assert.ok(onNode, `${image.image} is not on the node`);
    assert.equal(image.sizeBytes, onNode.sizeBytes, `${image.image}: the summary's size`);
    total += onNode.sizeBytes;
  }
  assert.ok(total > 0);
  assert.equal(summary.totalBytes, total, "the summary's bytes on the node");
  const started = run.events.filter((e) => e.msg === "pull attempt started");
  const finished = run.events.filter((e) =>
    e.msg === "image pulled" || e.msg === "pull attempt failed"
  );
  assert.equal(finished.length, started.length, "every started attempt finished");
  for (const image of summary.images) {
    assert.deepEqual(
      started.filter((e) => e.image === image.image).map((e) => Number(e.attempt)),
      Array.from({ length: image.attempts }, (_, i) => i + 1),
      `${image.image}: logged attempts against the summary's ${image.attempts}`,
    );
  }
}
