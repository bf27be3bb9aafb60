/**
 * What differs between the containerd versions of the matrix and matters to a node that
 * prefetches: where `hosts.toml` is read from (the pull-through-cache recipe) and what
 * containerd's own `image_pull_progress_timeout` cancels. Each difference is a table per version,
 * so a new version fails here until someone has measured it.
 */
import assert from "node:assert/strict";
import { CriClient } from "../lib/runtime/cri_client.ts";
import {
  type Faults,
  type Stack,
  startContainerd,
  startStack,
  testEachContainerd,
} from "../testing/stack/stack.ts";

const MiB = 1 << 20;

/**
 * Whether the CRI plugin reads each directory of a `config_path` that lists several, separated by
 * ':' (`/etc/containerd/certs.d:/etc/docker/certs.d`). 2.1 pulls through the transfer service,
 * which takes the whole value as one directory: with a list, no `hosts.toml` is read at all.
 */
const READS_CONFIG_PATH_LIST: Record<string, boolean> = {
  "1.6.20": true,
  "1.7.24": true,
  "2.1.9": false,
};

/** Requests for `repository` that went through the fault proxy (the "cache"). */
function askedThroughProxy(stack: Stack, repository: string): string[] {
  return stack.proxy.requests.filter((r) => r.path.startsWith(`/v2/${repository}/`))
    .map((r) => `${r.method} ${r.path.replace(/\?.*$/, "").replace(/sha256:\w+/, "<digest>")}`);
}

testEachContainerd(
  "the pull-through-cache recipe: a mirror in hosts.toml, and config_path as a list",
  async (t, containerd) => {
    const readsList = READS_CONFIG_PATH_LIST[containerd.version];
    assert.equal(typeof readsList, "boolean", `add ${containerd.version} to the table`);
    await using stack = await startStack({ containerd });
    const origin = stack.registry.host;

    await t.step("the mirror (here the fault proxy) is asked first", async () => {
      await stack.containerd.setMirror(origin, stack.proxy.host);
      const image = await stack.pushImage({ repository: "mirror/one-dir", tag: "v1" });
      using cri = new CriClient(stack.containerd.socket);
      await cri.pullImage(image.reference(origin));
      assert.deepEqual(askedThroughProxy(stack, "mirror/one-dir"), [
        "HEAD /v2/mirror/one-dir/manifests/v1",
        "GET /v2/mirror/one-dir/manifests/<digest>",
        "GET /v2/mirror/one-dir/blobs/<digest>",
        "GET /v2/mirror/one-dir/blobs/<digest>",
      ]);
    });

    await t.step("with a second directory in config_path, 2.1 reads neither", async () => {
      const empty = await Deno.makeTempDir({ prefix: "ipf-certs-" });
      try {
        await using node = await startContainerd({
          registryHosts: [],
          extraRegistryConfigDirs: [empty],
          binary: stack.containerdBinaries.containerd,
          ctrBinary: stack.containerdBinaries.ctr,
        });
        await node.setMirror(origin, stack.proxy.host);
        const image = await stack.pushImage({ repository: "mirror/two-dirs", tag: "v1" });
        using cri = new CriClient(node.socket);
        // Either way the image lands: without hosts.toml, 127.0.0.1 is asked over plain HTTP.
        await cri.pullImage(image.reference(origin));
        assert.equal(askedThroughProxy(stack, "mirror/two-dirs").length > 0, readsList);
      } finally {
        await Deno.remove(empty, { recursive: true });
      }
    });
  },
);

/** What containerd's own `image_pull_progress_timeout` cancels, per version. */
interface ProgressTimeoutCancels {
  /** A layer that stops after 1.5 MiB, the connection left open. */
  stalledMidway: boolean;
  /** A layer that stops after 256 KiB, within its first MiB. */
  stalledInFirstMiB: boolean;
  /** A 2.5 MiB layer at 512 KiB/s: bytes keep coming, a MiB every 2 s. */
  slow: boolean;
}

/**
 * 1.6 has no such setting. 1.7 counts every byte its HTTP client reads while a request is open.
 * 2.1 counts what the transfer service reports, which moves in whole MiB: a layer stuck in its
 * first MiB counts as not downloading at all, and one slower than a MiB per timeout is cancelled
 * although bytes keep arriving (with the default of 5m: below about 3.4 KiB/s).
 */
const PROGRESS_TIMEOUT_CANCELS: Record<string, ProgressTimeoutCancels> = {
  "1.6.20": { stalledMidway: false, stalledInFirstMiB: false, slow: false },
  "1.7.24": { stalledMidway: true, stalledInFirstMiB: true, slow: false },
  "2.1.9": { stalledMidway: true, stalledInFirstMiB: false, slow: true },
};

testEachContainerd(
  "containerd's own image_pull_progress_timeout: what it cancels",
  async (t, containerd) => {
    const expected = PROGRESS_TIMEOUT_CANCELS[containerd.version];
    assert.ok(expected, `add ${containerd.version} to PROGRESS_TIMEOUT_CANCELS`);
    await using stack = await startStack({ containerd });
    await using node = await startContainerd({
      registryHosts: [stack.proxy.host],
      imagePullProgressTimeout: "1s",
      binary: stack.containerdBinaries.containerd,
      ctrBinary: stack.containerdBinaries.ctr,
    });
    using cri = new CriClient(node.socket);

    /**
     * Pulls a one-layer image under `faults` for at most `waitMs` (a stall: containerd acts
     * after 1 s without progress, checked every 0.5 s; the slow layer: long enough to land).
     */
    const outcome = async (
      name: string,
      layerBytes: number,
      waitMs: number,
      faults: (layer: RegExp) => Faults,
    ): Promise<"landed" | "cancelled by containerd" | "still pulling"> => {
      const image = await stack.pushImage({ repository: `timeout/${name}`, tag: "v1", layerBytes });
      stack.proxy.setFaults(faults(new RegExp(image.layers[0].digest)));
      try {
        await cri.pullImage(image.reference(stack.proxy.host), {
          signal: AbortSignal.timeout(waitMs),
        });
        return "landed";
      } catch (error) {
        if ((error as Error).name === "TimeoutError") return "still pulling";
        assert.match((error as Error).message, /context canceled/);
        return "cancelled by containerd";
      } finally {
        stack.proxy.setFaults({});
      }
    };

    await t.step("a layer stalled midway", async () => {
      const stall = (match: RegExp) => ({ stall: { count: 1, afterBytes: 1.5 * MiB, match } });
      assert.equal(
        await outcome("midway", 4 * MiB, 4_000, stall),
        expected.stalledMidway ? "cancelled by containerd" : "still pulling",
      );
    });
    await t.step("a layer stalled within its first MiB", async () => {
      const stall = (match: RegExp) => ({ stall: { count: 1, afterBytes: 256 << 10, match } });
      assert.equal(
        await outcome("first-mib", 4 * MiB, 4_000, stall),
        expected.stalledInFirstMiB ? "cancelled by containerd" : "still pulling",
      );
    });
    await t.step("a slow layer that keeps receiving", async () => {
      const slow = () => ({ bandwidthBytesPerSecond: 512 << 10 });
      assert.equal(
        await outcome("slow", 2.5 * MiB, 10_000, slow),
        expected.slow ? "cancelled by containerd" : "landed",
      );
    });
  },
);
