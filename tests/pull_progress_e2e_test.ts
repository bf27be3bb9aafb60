/**
 * The containerd progress source end to end: real containerd (CRI plugin and content service on
 * one socket), real registry, the fault proxy shaping the blob downloads.
 *
 * These tests also pin the containerd facts the source and the pull scheduler rely on, so that a
 * containerd that behaves differently makes one of them fail.
 */
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { CriClient } from "../lib/runtime/cri_client.ts";
import {
  ContainerdProgressSource,
  ingestDigest,
  probeProgress,
} from "../lib/runtime/containerd_progress.ts";
import type { ImageProgress } from "../lib/pull/progress_source.ts";
import { type PushedImage, startStack, testEachContainerd } from "../testing/stack/stack.ts";
import { waitUntil } from "../testing/stack/wait_until.ts";

const MiB = 1 << 20;

/** A CRI pull running in the background; disposal cancels it and waits for it to end. */
interface BackgroundPull extends AsyncDisposable {
  /** Settles with "pulled" or "cancelled"; rejects on any other failure. */
  readonly done: Promise<"pulled" | "cancelled">;
  /** Cancels the pull and waits until the call has ended. */
  cancel(): Promise<void>;
}

function pullInBackground(socket: string, image: string): BackgroundPull {
  const controller = new AbortController();
  const cri = new CriClient(socket);
  const done = cri.pullImage(image, { signal: controller.signal }).then(
    () => "pulled" as const,
    (error) => {
      if (controller.signal.aborted) return "cancelled" as const;
      throw error;
    },
  );
  done.catch(() => {}); // observed by the test; never an unhandled rejection
  const cancel = async () => {
    controller.abort();
    await done.catch(() => {});
    cri.close();
  };
  return { done, cancel, [Symbol.asyncDispose]: cancel };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Config + layer bytes of a pushed image (its size without the manifest). */
async function blobBytes(image: PushedImage, registryUrl: string): Promise<number> {
  const response = await fetch(`${registryUrl}/v2/${image.repository}/blobs/${image.configDigest}`);
  const config = (await response.arrayBuffer()).byteLength;
  return config + image.layers.reduce((sum, layer) => sum + layer.size, 0);
}

testEachContainerd(
  "a bandwidth-capped pull shows bytes growing to the image's size",
  async (_t, containerd) => {
    await using stack = await startStack({ containerd });
    const image = await stack.pushImage({
      repository: "team/app",
      tag: "v1",
      layers: 3,
      layerBytes: 3 * MiB,
    });
    const ref = image.reference(stack.proxy.host);
    const pinned = `${stack.proxy.host}/${image.repository}@${image.digest}`;
    const expectedTotal = await blobBytes(image, stack.registry.url);
    using source = new ContainerdProgressSource(stack.containerd.socket);
    stack.proxy.setFaults({ bandwidthBytesPerSecond: 2 * MiB });

    await using pull = pullInBackground(stack.containerd.socket, ref);
    const samples: { at: number; tag?: ImageProgress; pinned?: ImageProgress }[] = [];
    // Every offset each ingest showed, with when it first showed it.
    const offsets = new Map<string, { at: number; offset: number }[]>();
    const started = performance.now();
    let pulled = false;
    let slowest = 0;
    pull.done.then(() => pulled = true, () => {});
    while (!pulled) {
      const at = performance.now() - started;
      const [sample, ingests] = await Promise.all([
        source.sample([ref, pinned]),
        source.listIngests(),
      ]);
      slowest = Math.max(slowest, performance.now() - started - at);
      samples.push({ at, tag: sample.get(ref), pinned: sample.get(pinned) });
      for (const ingest of ingests) {
        const seen = offsets.get(ingest.ref) ?? [];
        if (seen.at(-1)?.offset !== ingest.offset) seen.push({ at, offset: ingest.offset });
        offsets.set(ingest.ref, seen);
      }
      await sleep(100);
    }
    assert.equal(await pull.done, "pulled");
    const final = await source.sample([ref, pinned]);

    const shown = samples.filter((s) => s.tag !== undefined);
    assert.ok(shown.length >= 10, `only ${shown.length} of ${samples.length} samples showed it`);
    let previous = 0;
    for (const { at, tag } of shown) {
      assert.ok(
        tag!.receivedBytes >= previous,
        `receivedBytes fell at ${at} ms: ${previous} to ${tag!.receivedBytes}`,
      );
      assert.equal(tag!.totalBytes, expectedTotal);
      previous = tag!.receivedBytes;
    }
    assert.ok(shown.some((s) => s.tag!.activeDownloads > 0), "no sample saw a download");
    assert.ok(slowest < 500, `a sample took ${Math.round(slowest)} ms`);
    assert.ok(
      new Set(shown.map((s) => s.tag!.receivedBytes)).size >= 4,
      "receivedBytes should take several values on the way",
    );
    // By digest the attribution is exact, and agrees with the tag's here (one pull only).
    for (const { tag, pinned: byDigest } of shown) {
      if (byDigest) assert.equal(byDigest.totalBytes, tag!.totalBytes);
    }
    // Once pulled, the image stays attributed while it is sampled: all bytes, no downloads.
    assert.deepEqual(final.get(ref), {
      receivedBytes: expectedTotal,
      totalBytes: expectedTotal,
      activeDownloads: 0,
    });
    assert.deepEqual(final.get(pinned), final.get(ref));

    // containerd 1.6 fact: an ingest's offset only moves in whole MiB (1 MiB copy buffer).
    const layerRefs = [...offsets.keys()].filter((r) => r.startsWith("layer-"));
    assert.deepEqual(
      layerRefs.map(ingestDigest).sort(),
      image.layers.map((l) => l.digest).sort(),
      "ingest refs are layer-<digest>",
    );
    const steps: number[] = [];
    for (const ref of layerRefs) {
      const seen = offsets.get(ref)!;
      // Whole MiB, except the blob's last, shorter piece, written just before it is committed.
      const size = image.layers.find((l) => l.digest === ingestDigest(ref))!.size;
      for (const { offset } of seen) {
        assert.ok(
          offset % MiB === 0 || offset === size,
          `${ref} showed offset ${offset} of ${size}`,
        );
      }
      for (let i = 1; i < seen.length; i++) steps.push(seen[i].at - seen[i - 1].at);
    }
    console.log(
      `offset updates: ${steps.length} steps of 1 MiB per ingest, ` +
        `median ${Math.round(median(steps))} ms apart at ~${(2 / layerRefs.length).toFixed(2)} ` +
        `MiB/s per blob; slowest sample ${Math.round(slowest)} ms`,
    );
  },
);

testEachContainerd(
  "a stalled blob download shows no new bytes, and a cancelled pull leaves nothing",
  async (_t, containerd) => {
    await using stack = await startStack({ containerd });
    const image = await stack.pushImage({
      repository: "team/stall",
      layers: 2,
      layerBytes: 4 * MiB,
    });
    const ref = image.reference(stack.proxy.host);
    const [stalled, other] = image.layers;
    using source = new ContainerdProgressSource(stack.containerd.socket);
    // 1.5 MiB arrive, then nothing: containerd writes the first full MiB and waits.
    stack.proxy.setFaults({
      stall: { count: 1, afterBytes: 1.5 * MiB, match: new RegExp(stalled.digest) },
    });

    const pull = pullInBackground(stack.containerd.socket, ref);
    try {
      const config = (await blobBytes(image, stack.registry.url)) - stalled.size - other.size;
      const stuck = config + other.size + MiB;
      const reached = await waitUntil(
        async () => (await source.sample([ref])).get(ref)?.receivedBytes === stuck,
        { timeoutMs: 15_000, intervalMs: 200 },
      );
      assert.ok(reached, `receivedBytes never reached ${stuck}`);
      for (let i = 0; i < 6; i++) {
        await sleep(500);
        assert.deepEqual((await source.sample([ref])).get(ref), {
          receivedBytes: stuck,
          totalBytes: config + stalled.size + other.size,
          activeDownloads: 1,
        });
      }

      // containerd 1.6 fact: cancelling the CRI pull removes its ingest at once, and garbage-
      // collects what it had committed (here the other layer) soon after: a retry restarts at 0.
      await pull.cancel();
      assert.equal(await pull.done, "cancelled");
      const cancelledAt = performance.now();
      const ingestGone = await waitUntil(
        async () =>
          !(await source.listIngests()).some((i) => ingestDigest(i.ref) === stalled.digest),
        { timeoutMs: 5000, intervalMs: 50 },
      );
      const ingestMs = performance.now() - cancelledAt;
      assert.ok(ingestGone, "the cancelled pull's ingest is still listed");
      const collected = await waitUntil(
        async () => !(await source.sample([ref])).has(ref),
        { timeoutMs: 10_000, intervalMs: 100 },
      );
      assert.ok(collected, "the cancelled pull's manifest and blobs are still in the store");
      console.log(
        `after cancel: ingest gone within ${Math.round(ingestMs)} ms, manifest and committed ` +
          `layer collected within ${Math.round(performance.now() - cancelledAt)} ms`,
      );

      // The retry downloads the whole layer again.
      stack.proxy.setFaults({});
      stack.proxy.resetCounters();
      await using retry = pullInBackground(stack.containerd.socket, ref);
      assert.equal(await retry.done, "pulled");
      const served = stack.proxy.requests.filter((r) => r.path.includes(other.digest));
      assert.deepEqual(served.map((r) => r.bytes), [other.size]);
    } finally {
      await pull.cancel();
    }
  },
);

testEachContainerd(
  "images that are not being pulled are absent from samples",
  async (_t, containerd) => {
    await using stack = await startStack({ containerd });
    const [pulling, idle, done] = await Promise.all([
      stack.pushImage({ repository: "team/busy", tag: "v1", layers: 2, layerBytes: 2 * MiB }),
      stack.pushImage({ repository: "team/idle", tag: "v1" }),
      stack.pushImage({ repository: "team/done", tag: "v1" }),
    ]);
    using cri = new CriClient(stack.containerd.socket);
    await cri.pullImage(done.reference(stack.proxy.host));
    using source = new ContainerdProgressSource(stack.containerd.socket);
    stack.proxy.setFaults({ bandwidthBytesPerSecond: 1 * MiB });
    const busy = pulling.reference(stack.proxy.host);
    const others = [
      idle.reference(stack.proxy.host),
      done.reference(stack.proxy.host),
      `${stack.proxy.host}/team/idle@sha256:${"0".repeat(64)}`,
      "docker.io/library/debian:12",
      "not a reference",
    ];

    await using pull = pullInBackground(stack.containerd.socket, busy);
    const seen = await waitUntil(
      async () => (await source.sample([busy, ...others])).has(busy),
      { timeoutMs: 10_000, intervalMs: 200 },
    );
    assert.ok(seen, "the image being pulled never showed up");
    const sample = await source.sample([busy, ...others]);
    assert.deepEqual([...sample.keys()], [busy]);
    await pull.cancel();
  },
);

testEachContainerd(
  "probeProgress tells containerd from sockets without a content service",
  async (t, containerd) => {
    await t.step("containerd: available", async () => {
      await using stack = await startStack({ containerd });
      const probe = await probeProgress(stack.containerd.socket);
      assert.ok(probe.available);
      probe.source.close();
    });

    await t.step("a gRPC server without the service: unavailable, says why", async () => {
      const dir = await Deno.makeTempDir({ prefix: "ipf-probe-" });
      const server = new grpc.Server();
      try {
        await new Promise<number>((resolve, reject) =>
          server.bindAsync(
            `unix:${dir}/grpc.sock`,
            grpc.ServerCredentials.createInsecure(),
            (error, port) => error ? reject(error) : resolve(port),
          )
        );
        const probe = await probeProgress(`${dir}/grpc.sock`);
        assert.equal(probe.available, false);
        assert.match(!probe.available ? probe.reason : "", /does not serve containerd's content/);
      } finally {
        await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
        await Deno.remove(dir, { recursive: true });
      }
    });

    await t.step("no socket: unavailable, says why", async () => {
      const probe = await probeProgress("/tmp/ipf-no-such-dir/containerd.sock");
      assert.equal(probe.available, false);
      assert.match(!probe.available ? probe.reason : "", /ipf-no-such-dir\/containerd\.sock/);
    });
  },
);

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? NaN : sorted[Math.floor(sorted.length / 2)];
}
