/**
 * Big images end to end: the real program against a real containerd and registry, the fault
 * proxy counting what the registry serves.
 *
 * - An unpack that outlasts the attempt timeout is not cut: containerd shows it (an `extract-`
 *   snapshot in the pull's lease once every blob has arrived) and the progress monitor counts it
 *   as alive, so the image lands in one attempt and each blob is fetched once.
 * - An attempt cut mid-download keeps what it committed: the run's own lease holds the blobs, the
 *   half-downloaded one and the unpacked layers, so the retry downloads only the rest.
 */
import assert from "node:assert/strict";
import { ContainerdLeases } from "../lib/runtime/containerd_leases.ts";
import { ContainerdProgressSource } from "../lib/runtime/containerd_progress.ts";
import { openRunLease } from "../lib/runtime/containerd_run_lease.ts";
import { CriClient } from "../lib/runtime/cri_client.ts";
import { waitUntil } from "../testing/stack/wait_until.ts";
import { type PushedImage, startStack, testEachContainerd } from "../testing/stack/stack.ts";
import { jsonFetchArgs, type ProgramRun, runProgram } from "../testing/prefetcher_process.ts";

const MiB = 1 << 20;

function describe(run: ProgramRun): string {
  return `exit ${run.code}\nstdout:\n${run.stdout}\nstderr:\n${run.stderr}`;
}

/** Response body bytes the registry served for each blob of `image`, per request. */
function servedPerBlob(
  requests: readonly { path: string; method: string; bytes: number }[],
  image: PushedImage,
): Map<string, number[]> {
  const served = new Map<string, number[]>();
  for (const digest of [image.configDigest, ...image.layers.map((l) => l.digest)]) {
    served.set(
      digest,
      requests.filter((r) => r.method === "GET" && r.path.includes(digest)).map((r) => r.bytes),
    );
  }
  return served;
}

/**
 * Samples `image`'s progress until `done` settles; returns how long the samples showed it
 * unpacking (first to last such sample), in milliseconds.
 */
async function unpackingMs(socket: string, image: string, done: Promise<unknown>): Promise<number> {
  using source = new ContainerdProgressSource(socket);
  let finished = false;
  done.finally(() => finished = true);
  let first: number | undefined;
  let last = 0;
  while (!finished) {
    const sample = await source.sample([image]).catch(() => undefined);
    if (sample?.get(image)?.unpacking) {
      first ??= performance.now();
      last = performance.now();
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return first === undefined ? 0 : last - first;
}

testEachContainerd(
  "a big image whose unpack outlasts the attempt timeout lands in one attempt",
  async (_t, containerd) => {
    await using stack = await startStack({ containerd });
    // One layer of 300 MiB of incompressible bytes in 20,000 files: containerd applies it for
    // seconds after its last byte, far longer than the 1 s attempt timeout.
    const image = await stack.pushImage({
      repository: "big/one",
      layerBytes: 300 * MiB,
      filesPerLayer: 20_000,
    });
    const ref = image.reference(stack.proxy.host);
    stack.proxy.resetCounters();
    const run = runProgram([
      ...jsonFetchArgs(stack.containerd.socket),
      "--initial-pull-attempt-timeout",
      "1s",
      "--max-pull-attempt-timeout",
      "1s",
      "--overall-timeout",
      "2m",
      ref,
    ]);
    const unpacking = await unpackingMs(stack.containerd.socket, ref, run);
    const result = await run;
    assert.equal(result.code, 0, describe(result));
    const [pulled] = result.summary!.images;
    assert.equal(pulled.status, "pulled", describe(result));
    assert.equal(pulled.attempts, 1, describe(result));
    // The situation under test: unpacking alone outlasted the 1 s attempt timeout (first to last
    // sample that showed it is a lower bound on how long it took).
    assert.ok(unpacking > 1_200, `unpacking showed for ${Math.round(unpacking)} ms only`);
    for (const [digest, bytes] of servedPerBlob(stack.proxy.requests, image)) {
      assert.equal(bytes.length, 1, `${digest} was fetched ${bytes.length} times: ${bytes}`);
    }
    assert.ok(
      stack.proxy.bytesServed < image.sizeBytes * 1.05,
      `registry served ${stack.proxy.bytesServed} bytes for a ${image.sizeBytes}-byte image`,
    );
  },
);

testEachContainerd(
  "an attempt cut by a stall in the last layer keeps what it committed and resumes the layer",
  async (_t, containerd) => {
    await using stack = await startStack({ containerd });
    const image = await stack.pushImage({
      repository: "big/four",
      layers: 4,
      layerBytes: 64 * MiB,
    });
    const last = image.layers[3];
    // The 4th layer's first download goes silent halfway; the retry asks for the rest.
    stack.proxy.setFaults({
      stall: { count: 1, afterBytes: Math.floor(last.size / 2), match: new RegExp(last.digest) },
    });
    stack.proxy.resetCounters();
    const result = await runProgram([
      ...jsonFetchArgs(stack.containerd.socket),
      "--stall-timeout",
      "3s",
      "--initial-pull-attempt-delay",
      "100ms",
      "--max-pull-attempt-delay",
      "100ms",
      "--overall-timeout",
      "2m",
      image.reference(stack.proxy.host),
    ]);
    assert.equal(result.code, 0, describe(result));
    const [pulled] = result.summary!.images;
    assert.equal(pulled.status, "pulled", describe(result));
    assert.equal(pulled.attempts, 2, describe(result));
    const served = servedPerBlob(stack.proxy.requests, image);
    for (const layer of image.layers.slice(0, 3)) {
      assert.deepEqual(served.get(layer.digest), [layer.size], `layer ${layer.digest}`);
    }
    const lastServed = served.get(last.digest)!;
    assert.equal(lastServed.length, 2, `${lastServed}`);
    // Resumed: what the stall cut short (up to containerd's 1 MiB buffer) is all that came twice.
    const lastTotal = lastServed[0] + lastServed[1];
    assert.ok(lastTotal < last.size + 4 * MiB, `${lastServed} for a ${last.size}-byte layer`);
    const ratio = stack.proxy.bytesServed / image.sizeBytes;
    assert.ok(ratio <= 1.05, `registry served ${ratio.toFixed(2)}× the image`);
    // The run's lease ended with the run.
    using leases = new ContainerdLeases(stack.containerd.socket);
    const left = await leases.list({ deadline: Date.now() + 5_000 });
    assert.deepEqual(left.filter((lease) => lease.id.startsWith("image-prefetcher-")), []);
  },
);

testEachContainerd(
  "a pull cut while unpacking is retried from the kept blobs and layers, and seen unpacking again",
  async (_t, containerd) => {
    await using stack = await startStack({ containerd });
    const image = await stack.pushImage({
      repository: "big/cut",
      layers: 2,
      layerBytes: 100 * MiB,
      filesPerLayer: 3000,
    });
    const ref = image.reference(stack.proxy.host);
    const socket = stack.containerd.socket;
    await using lease = await openRunLease(socket, { overallTimeoutMs: 60_000 });
    using source = new ContainerdProgressSource(socket, { keeper: lease });
    using cri = new CriClient(socket);
    stack.proxy.resetCounters();
    using leases = new ContainerdLeases(socket);
    const unpacking = async () => (await source.sample([ref])).get(ref)?.unpacking === true;
    const keptSnapshots = async () =>
      (await leases.listResources(lease.id, { deadline: Date.now() + 5_000 }))
        .filter((r) => r.type.startsWith("snapshots/"));

    // Attempt 1 is cut while it unpacks, once its first layer is unpacked (and kept), as an
    // attempt timeout would cut it without this fix.
    const first = new AbortController();
    const cut = cri.pullImage(ref, { signal: first.signal }).catch(() => "cut");
    const midway = await waitUntil(
      async () => await unpacking() && (await keptSnapshots()).length > 0,
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    assert.ok(midway, "never seen unpacking with a layer unpacked");
    first.abort();
    assert.equal(await cut, "cut");
    // containerd drops the cancelled pull's lease; ours keeps the blobs past its collection.
    // Meanwhile the source samples only other images, as it does for a run's other attempts.
    for (let i = 0; i < 10; i++) {
      await source.sample([`${stack.proxy.host}/big/other:latest`]);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }

    // Attempt 2: nothing to download; the same source still attributes the image and sees the
    // unpack (its manifest is complete now).
    const kept = (await keptSnapshots()).map((r) => r.id);
    assert.ok(kept.length > 0, "the unpacked layer was not kept");
    const second = cri.pullImage(ref);
    let seen = false;
    let settled = false;
    const applied = new Set<string>();
    second.finally(() => settled = true).catch(() => {});
    while (!settled) {
      seen ||= await unpacking();
      for (const { id } of await leases.list({ deadline: Date.now() + 5_000 })) {
        const resources = await leases.listResources(id, { deadline: Date.now() + 5_000 })
          .catch(() => []);
        for (const r of resources) if (r.id.startsWith("extract-")) applied.add(r.id);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await second;
    assert.ok(seen, "the retry was never seen unpacking");
    // The retry applies only the layer that was not unpacked (keys end with the chain ID).
    assert.ok(applied.size > 0, "the retry applied no layer");
    for (const key of applied) {
      assert.ok(!kept.some((id) => key.endsWith(` ${id}`)), `${key} was applied again`);
    }
    for (const [digest, bytes] of servedPerBlob(stack.proxy.requests, image)) {
      assert.equal(bytes.length, 1, `${digest} was fetched ${bytes.length} times: ${bytes}`);
    }
  },
);
