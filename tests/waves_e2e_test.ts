/**
 * Cluster-wide waves end to end: 3 real containerds pulling through a real pull-through cache
 * (`docker-registry` in proxy mode) in front of the origin, the fault proxy in front of the
 * origin counting what it serves, `aggregate-metrics --waves` coordinating, every `fetch` a
 * real process with the bearer token.
 */
import assert from "node:assert/strict";
import { parseDuration } from "../lib/core/duration.ts";
import type { WavesSnapshot } from "../lib/waves/snapshot.ts";
import {
  type MetricsServerProcess,
  startMetricsServerProcess,
} from "../testing/metrics_server_process.ts";
import type { ProgramRun } from "../testing/prefetcher_process.ts";
import { type PushedImage, pushImage } from "../testing/stack/stack.ts";
import { waitUntil } from "../testing/stack/wait_until.ts";
import { freePort } from "../testing/stack/free_port.ts";
import { startWavesCluster } from "../testing/waves_cluster.ts";

const KiB = 1024;
const TOKEN = "waves-e2e-token";

async function coordinator(tokenFile: string, args: string[] = []) {
  return await startMetricsServerProcess({
    args: ["--waves", "--token-file", tokenFile, "--fanout", "10", ...args],
  });
}

async function picture(server: MetricsServerProcess): Promise<WavesSnapshot> {
  const response = await fetch(`${server.url}/summary`, {
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  assert.equal(response.status, 200);
  return (await response.json()).waves;
}

function wavesArgs(server: MetricsServerProcess, tokenFile: string, maxWait = "3s"): string[] {
  return [
    "--metrics-endpoint",
    `127.0.0.1:${server.grpcPort}`,
    "--metrics-token-file",
    tokenFile,
    "--waves",
    "--waves-max-wait",
    maxWait,
    // A wedge fails the test in a minute instead of hanging it.
    "--overall-timeout",
    "60s",
  ];
}

function assertAllPulled(runs: ProgramRun[], images: number): void {
  runs.forEach((run, i) => {
    assert.equal(run.code, 0, `node-${i + 1} exited ${run.code}:\n${run.stderr}`);
    assert.equal(run.summary?.pulled, images, `node-${i + 1}:\n${run.stderr}`);
  });
}

/** GET requests per blob the origin answered, as a sorted list of counts. */
function blobGetCounts(requests: readonly { method: string; path: string }[]): number[] {
  const counts = new Map<string, number>();
  for (const r of requests) {
    const digest = r.method === "GET"
      ? r.path.match(/\/blobs\/(sha256:[0-9a-f]+)/)?.[1]
      : undefined;
    if (digest) counts.set(digest, (counts.get(digest) ?? 0) + 1);
  }
  return [...counts.values()].sort();
}

async function pushSet(
  target: Parameters<typeof pushImage>[0],
  prefix: string,
  count: number,
  layerBytes: number,
): Promise<PushedImage[]> {
  const images: PushedImage[] = [];
  for (let i = 0; i < count; i++) {
    images.push(
      await pushImage(target, { repository: `${prefix}-${i}`, tag: "v1", layers: 3, layerBytes }),
    );
  }
  return images;
}

Deno.test("waves on a 3-node cluster behind a pull-through cache", async (t) => {
  await using cluster = await startWavesCluster({ nodes: 3 });
  const tokenFile = await Deno.makeTempFile({ prefix: "waves-token-" });
  await Deno.writeTextFile(tokenFile, TOKEN);
  const { origin } = cluster;
  origin.setFaults({ latencyMs: 10, bandwidthBytesPerSecond: 4 * 1024 * KiB });

  await t.step(
    "the origin serves each blob as often as for one node, and every node has every image",
    async () => {
      const one = await pushSet(cluster.registry, "waves/one", 2, 256 * KiB);
      origin.resetCounters();
      const alone = await cluster.fetch(0, one.map((i) => i.reference(origin.host))).finished;
      assertAllPulled([alone], 2);
      const forOneNode = blobGetCounts(origin.requests);

      const images = await pushSet(cluster.registry, "waves/all", 2, 256 * KiB);
      await using server = await coordinator(tokenFile);
      origin.resetCounters();
      const runs = await Promise.all(
        [0, 1, 2].map((i) =>
          cluster.fetch(i, [
            ...wavesArgs(server, tokenFile, "30s"),
            ...images.map((i) => i.reference(origin.host)),
          ])
            .finished
        ),
      );
      assertAllPulled(runs, 2);
      assert.deepEqual(blobGetCounts(origin.requests), forOneNode);
      const waited = runs.flatMap((r) => r.events).filter((e) =>
        e.msg === "image waits for its wave"
      );
      assert.ok(waited.length > 0, "some node waited for a wave");
      const waves = await picture(server);
      assert.deepEqual(waves.images.map((i) => [i.have, i.pulling]), [[3, 0], [3, 0]]);
    },
  );

  await t.step(
    "an image the registry does not have: one node learns it, the others try at once",
    async () => {
      const [good] = await pushSet(cluster.registry, "waves/beside-missing", 1, 64 * KiB);
      const missing = `${origin.host}/waves/does-not-exist:v1`;
      await using server = await coordinator(tokenFile);
      const runs = await Promise.all([0, 1, 2].map((i) =>
        cluster.fetch(i, [
          ...wavesArgs(server, tokenFile, "30s"),
          missing,
          good.reference(origin.host),
        ]).finished
      ));
      for (const run of runs) {
        const failed = run.summary?.images.find((i) => i.image === missing);
        assert.equal(failed?.failure, "permanent", run.stderr);
        assert.equal(failed?.attempts, 1);
      }
      // Before, each node in turn became the image's first wave and failed; now only one does.
      const seeds = runs.flatMap((r) => r.events).filter((e) =>
        e.msg === "image admitted" && e.image === missing && e.wave === "first"
      );
      assert.equal(seeds.length, 1, "one first wave for the missing image");
    },
  );

  await t.step(
    "the coordinator killed mid-run: every node finishes within the bounded wait",
    async () => {
      const images = await pushSet(cluster.registry, "waves/kill", 2, 96 * KiB);
      origin.setFaults({ latencyMs: 10, bandwidthBytesPerSecond: 256 * KiB });
      await using server = await coordinator(tokenFile);
      const started = performance.now();
      const running = [0, 1, 2].map((i) =>
        cluster.fetch(i, [
          ...wavesArgs(server, tokenFile, "3s"),
          ...images.map((i) => i.reference(origin.host)),
        ])
      );
      const waiting = await waitUntil(async () => {
        const waves = await picture(server);
        return waves.nodesPulling > 0 && waves.images.some((i) => i.waiting > 0);
      }, { timeoutMs: 20_000 });
      assert.ok(waiting, "nodes pulled and waited");
      await server.stop("SIGKILL");
      const runs = await Promise.all(running.map((r) => r.finished));
      assertAllPulled(runs, 2);
      const gaveUp = runs.flatMap((r) => r.events).filter((e) =>
        e.msg === "the waves coordinator does not answer; pulling on our own"
      );
      assert.ok(gaveUp.length > 0, "a waiting node said it pulls on its own");
      for (const event of gaveUp) {
        // --waves-max-wait 3s, plus at most one exchange (3s) and one pause (1s).
        assert.ok(parseDuration(String(event.waited)) <= 7_000, `waited ${event.waited}`);
      }
      console.log(
        `  all done ${((performance.now() - started) / 1000).toFixed(1)} s after the start`,
      );
      origin.setFaults({ latencyMs: 10, bandwidthBytesPerSecond: 4 * 1024 * KiB });
    },
  );

  await t.step(
    "a first-wave node killed mid-pull: another takes its slot after the lease",
    async () => {
      const [image] = await pushSet(cluster.registry, "waves/lease", 1, 256 * KiB);
      const reference = image.reference(cluster.direct.host);
      await using server = await coordinator(tokenFile, ["--lease-timeout", "4s"]);
      // The first blob the origin is asked for stalls: the first wave's pull hangs.
      cluster.direct.setFaults({ stall: { count: 1, afterBytes: 1_000 } });
      const seed = cluster.fetch(0, [
        ...wavesArgs(server, tokenFile),
        "--stall-timeout",
        "60s",
        reference,
      ]);
      assert.ok(
        await waitUntil(async () => (await picture(server)).images[0]?.pulling === 1, {
          timeoutMs: 20_000,
        }),
      );
      const others = [1, 2].map((i) =>
        cluster.fetch(i, [...wavesArgs(server, tokenFile, "60s"), reference])
      );
      assert.ok(
        await waitUntil(async () => (await picture(server)).images[0].waiting === 2, {
          timeoutMs: 20_000,
        }),
      );
      seed.process.kill("SIGKILL");
      const seeded = (await seed.finished).events.find((e) => e.msg === "image admitted");
      assert.equal(seeded?.wave, "first");
      const runs = await Promise.all(others.map((r) => r.finished));
      assertAllPulled(runs, 1);
      const tookOver = runs.flatMap((r) => r.events).filter((e) =>
        e.msg === "image admitted" && e.wave === "first"
      );
      assert.equal(tookOver.length, 1, "one node took the dead seed's first-wave slot");
      // Not before the seed's lease ran out (it made no progress since it was admitted), and soon
      // after: within a lease and a few exchanges.
      const afterMs = Date.parse(String(tookOver[0].time)) - Date.parse(String(seeded.time));
      assert.ok(afterMs >= 3_900 && afterMs <= 12_000, `took over ${afterMs} ms after the seed`);
      cluster.direct.setFaults({});
    },
  );

  await t.step(
    "the registry answers 429 for a while: the bound drops, every image lands",
    async () => {
      const images = await pushSet(cluster.registry, "waves/limited", 2, 64 * KiB);
      await using server = await coordinator(tokenFile);
      cluster.direct.setFaults({
        failFirst: { count: 24, status: 429, match: /\/manifests\//, method: "*" },
      });
      const runs = await Promise.all([0, 1, 2].map((i) =>
        cluster.fetch(i, [
          ...wavesArgs(server, tokenFile),
          "--initial-pull-attempt-delay",
          "200ms",
          ...images.map((i) => i.reference(cluster.direct.host)),
        ]).finished
      ));
      assertAllPulled(runs, 2);
      const errors = runs.flatMap((r) => r.events).filter((e) => e.msg === "pull attempt failed")
        .map((e) => String(e.error));
      assert.ok(errors.some((e) => e.includes("429 Too Many Requests")), errors.join("\n"));
      const registry = (await picture(server)).registries.find((r) =>
        r.registry === cluster.direct.host
      );
      assert.ok(registry && registry.rateLimited > 0, JSON.stringify(registry));
      assert.notEqual(registry.bound, null, "the bound dropped from unbounded");
    },
  );
  await t.step(
    "a restarted coordinator takes its picture from what the nodes tell it",
    async () => {
      const images = await pushSet(cluster.registry, "waves/restart", 2, 96 * KiB);
      origin.setFaults({ latencyMs: 10, bandwidthBytesPerSecond: 256 * KiB });
      const ports = { grpcPort: freePort(), httpPort: freePort() };
      const args = ["--waves", "--token-file", tokenFile, "--fanout", "10"];
      const first = await startMetricsServerProcess({ ...ports, args });
      const running = [0, 1, 2].map((i) =>
        cluster.fetch(i, [
          ...wavesArgs(first, tokenFile, "30s"),
          ...images.map((i) => i.reference(origin.host)),
        ])
      );
      assert.ok(
        await waitUntil(async () => (await picture(first)).images.some((i) => i.have > 0), {
          timeoutMs: 20_000,
        }),
      );
      await first.stop("SIGKILL");
      await using second = await startMetricsServerProcess({ ...ports, args });
      const runs = await Promise.all(running.map((r) => r.finished));
      assertAllPulled(runs, 2);
      const told = runs.filter((r) =>
        r.events.some((e) => e.msg === "the waves coordinator restarted")
      );
      assert.ok(told.length > 0, "some node was still busy and saw the restart");
      for (const run of runs) {
        assert.ok(!run.events.some((e) => e.msg.includes("does not answer")), run.stderr);
      }
      // Every node that talked to the new coordinator told it about both images, including what
      // landed before the restart.
      const waves = await picture(second);
      assert.deepEqual(waves.images.map((i) => i.have), [told.length, told.length]);
      origin.setFaults({ latencyMs: 10, bandwidthBytesPerSecond: 4 * 1024 * KiB });
    },
  );
  await Deno.remove(tokenFile);
});
