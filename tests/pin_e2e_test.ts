/**
 * `fetch --pin` end to end: the real program against a real containerd, judged by CRI's own
 * `pinned` field (what the kubelet's image garbage collection skips on).
 */
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import imagesProto from "../proto/containerd_images.proto" with { type: "text" };
import { loadProto, serviceConstructor } from "../lib/core/proto.ts";
import { waitUntil } from "../testing/stack/wait_until.ts";
import { CriClient } from "../lib/runtime/cri_client.ts";
import { ContainerdImages, PINNED_LABEL_KEY } from "../lib/runtime/containerd_images.ts";
import {
  type Stack,
  startContainerd,
  startStack,
  testEachContainerd,
} from "../testing/stack/stack.ts";
import { jsonFetchArgs, type ProgramRun, runProgram } from "../testing/prefetcher_process.ts";

/** Whether each containerd reports a labelled image as pinned through CRI. */
const REPORTS_PINNED: Record<string, boolean> = {
  "1.6.20": false,
  "1.7.24": true,
  "2.1.9": true,
};

function fetchOn(socket: string, args: string[]): Promise<ProgramRun> {
  return runProgram([...jsonFetchArgs(socket), "--node-name", "pin-node", ...args]);
}

async function pinnedOnNode(stack: Stack, images: string[]): Promise<boolean[]> {
  using cri = new CriClient(stack.containerd.socket);
  return await Promise.all(images.map(async (image) => {
    const status = await cri.imageStatus(image);
    assert.ok(status, `${image} is not on the node`);
    return status.pinned;
  }));
}

testEachContainerd(
  "fetch --pin pins what it pulled and what was present",
  async (t, containerd) => {
    const reportsPinned = REPORTS_PINNED[containerd.version];
    assert.equal(typeof reportsPinned, "boolean", `add ${containerd.version} to REPORTS_PINNED`);
    await using stack = await startStack({ containerd });
    const [tagged, byDigest, present] = await Promise.all([
      stack.pushImage({ repository: "pin/tagged", tag: "v1" }),
      stack.pushImage({ repository: "pin/digest", tag: "v1" }),
      stack.pushImage({ repository: "pin/present", tag: "v1" }),
    ]);
    const host = stack.registry.host;
    const images = [
      tagged.reference(host),
      `${host}/pin/digest@${byDigest.digest}`,
      present.reference(host),
    ];
    const missing = `${host}/pin/missing:v1`;
    using cri = new CriClient(stack.containerd.socket);
    await cri.pullImage(present.reference(host));

    await t.step("without --pin nothing is pinned", async () => {
      const run = await fetchOn(stack.containerd.socket, [images[0]]);
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(await pinnedOnNode(stack, [images[0], images[2]]), [false, false]);
    });

    await t.step("--pin labels every image on the node; CRI reports it where it can", async () => {
      const run = await fetchOn(stack.containerd.socket, ["--pin", ...images, missing]);
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(await pinnedOnNode(stack, images), images.map(() => reportsPinned));
      using labels = new ContainerdImages(stack.containerd.socket);
      for (const image of images) {
        const id = (await cri.imageStatus(image))!.id;
        assert.equal((await labels.labels(id))[PINNED_LABEL_KEY], "pinned", `${image} (${id})`);
      }
      const lines = run.events.filter((l) => /pin/.test(l.msg));
      if (reportsPinned) {
        assert.deepEqual(
          lines.map((l) => [l.level, l.msg, l.image]).sort(),
          [
            ...images.map((image) => ["info", "image pinned", image]),
          ].sort(),
        );
      } else {
        assert.equal(lines.length, 1, JSON.stringify(lines));
        assert.equal(lines[0].level, "warn");
        assert.match(lines[0].msg, /does not report pinned images \(containerd does from 1\.7\)/);
        assert.match(String(lines[0].runtime), new RegExp(`^containerd ${containerd.version}`));
        assert.equal(lines[0].images, 3);
      }
    });

    await t.step("a pull of a tag rewrites the tag's record: a label there is lost", async () => {
      // Why fetch labels the image ID's record: a pull rewrites the record of the name it pulls.
      using labels = new ContainerdImages(stack.containerd.socket);
      await labels.pin(images[0]);
      assert.equal((await labels.labels(images[0]))[PINNED_LABEL_KEY], "pinned");
      await cri.pullImage(images[0]);
      assert.equal((await labels.labels(images[0]))[PINNED_LABEL_KEY], undefined);
    });

    await t.step("the pin survives re-pulls and a containerd restart", async () => {
      const run = await fetchOn(stack.containerd.socket, ["--pull-policy", "Always", ...images]);
      assert.equal(run.code, 0, run.stderr);
      await stack.containerd.restart();
      assert.deepEqual(await pinnedOnNode(stack, images), images.map(() => reportsPinned));
    });

    await t.step("when a pinned tag moves on, the pin stays with the image", async () => {
      const before = (await cri.imageStatus(images[0]))!.id;
      const moved = await stack.pushImage({ repository: "pin/tagged", tag: "v1", seed: "new" });
      const run = await fetchOn(stack.containerd.socket, ["--pull-policy", "Always", images[0]]);
      assert.equal(run.code, 0, run.stderr);
      const status = await cri.imageStatus(images[0]);
      assert.equal(status?.id, moved.configDigest);
      assert.equal(status?.pinned, false);
      assert.equal((await cri.imageStatus(before))?.pinned, reportsPinned);
    });
  },
);

testEachContainerd(
  "fetch --pin on a socket without containerd's images service says so once",
  async (_t, containerd) => {
    await using stack = await startStack({ containerd });
    await using runtime = await startContainerd({
      registryHosts: [stack.registry.host],
      disabledPlugins: ["io.containerd.grpc.v1.images"],
      binary: stack.containerdBinaries.containerd,
      ctrBinary: stack.containerdBinaries.ctr,
    });
    const image = await stack.pushImage({ repository: "pin/noservice", tag: "v1" });
    const run = await fetchOn(runtime.socket, ["--pin", image.reference(stack.registry.host)]);
    assert.equal(run.code, 0, run.stderr);
    const lines = run.events.filter((l) => /pin/.test(l.msg));
    assert.deepEqual(lines.map((l) => [l.level, l.msg]), [
      ["warn", "cannot pin images on this runtime; the kubelet may garbage-collect them"],
    ]);
    assert.match(String(lines[0].reason), /does not serve containerd's images service/);
  },
);

/** Whether each containerd survives an images `Update` request that carries no target. */
const SURVIVES_UPDATE_WITHOUT_TARGET: Record<string, boolean> = {
  "1.6.20": true,
  "1.7.24": false,
  "2.1.9": false,
};

testEachContainerd(
  "an images Update without a target: why ContainerdImages.pin sends the record's target back",
  async (_t, containerd) => {
    const survives = SURVIVES_UPDATE_WITHOUT_TARGET[containerd.version];
    assert.equal(typeof survives, "boolean", `add ${containerd.version} to the table`);
    await using stack = await startStack({ containerd });
    const image = await stack.pushImage({ repository: "pin/raw", tag: "v1" });
    const reference = image.reference(stack.registry.host);
    using cri = new CriClient(stack.containerd.socket);
    await cri.pullImage(reference);
    const Images = serviceConstructor(
      loadProto(imagesProto),
      "containerd.services.images.v1.Images",
    );
    const client = new Images(`unix:${stack.containerd.socket}`, grpc.credentials.createInsecure());
    const metadata = new grpc.Metadata();
    metadata.set("containerd-namespace", "k8s.io");
    const error = await new Promise<grpc.ServiceError | null>((resolve) =>
      client.Update(
        {
          image: { name: reference, labels: { [PINNED_LABEL_KEY]: "pinned" } },
          update_mask: { paths: [`labels.${PINNED_LABEL_KEY}`] },
        },
        metadata,
        (e: grpc.ServiceError | null) => resolve(e),
      )
    );
    client.close();
    if (survives) {
      assert.equal(error, null);
      assert.ok(stack.containerd.running);
    } else {
      assert.ok(error, "the call should fail: the daemon is gone");
      const gone = await waitUntil(() => !stack.containerd.running, { timeoutMs: 5_000 });
      assert.ok(gone, "containerd is still running");
      assert.match(await Deno.readTextFile(stack.containerd.logPath), /panic: runtime error/);
    }
  },
);
