/**
 * `keep` end to end: the real program against a real containerd and registry, with the image
 * list in a directory laid out and updated exactly as the kubelet updates a ConfigMap volume
 * (`testing/configmap_volume.ts`). containerd 1.7 reports pins through CRI; 1.6 does not, so there
 * the pin is judged by the labels on the image's ID record.
 */
import assert from "node:assert/strict";
import { CriClient } from "../lib/runtime/cri_client.ts";
import { ContainerdImages, PINNED_LABEL_KEY } from "../lib/runtime/containerd_images.ts";
import { ownerLabelKey } from "../lib/runtime/pin_labels.ts";
import { type Stack, startStack, testEachContainerd } from "../testing/stack/stack.ts";
import { waitUntil } from "../testing/stack/wait_until.ts";
import { ConfigMapVolume } from "../testing/configmap_volume.ts";
import { jsonFetchArgs, PERMISSION_FLAGS, runProgram } from "../testing/prefetcher_process.ts";
import { startApiFixture } from "../testing/kube/api_fixture.ts";
import { startMetricsServerProcess } from "../testing/metrics_server_process.ts";

const OWNER = "keep-test";
const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** What {@linkcode KeepProcess.start} adds to `keep`'s usual flags. */
interface KeepStart {
  /** `--node-name`. @default {"keep-node"} */
  node?: string;
  /** More flags. */
  args?: string[];
  /** More environment. */
  env?: Record<string, string>;
}

/**
 * A running `keep` on a kubelet-style ConfigMap volume of its own (the list under the key
 * `images`), whose standard error lines are read as they come.
 */
class KeepProcess implements AsyncDisposable {
  readonly lines: Record<string, unknown>[] = [];
  readonly volume: ConfigMapVolume;
  readonly #process: Deno.ChildProcess;
  readonly #reading: Promise<void>;

  /** Lays out the volume with `images` listed, and starts `keep` on it with JSON logs. */
  static async start(
    stack: Stack,
    images: string[],
    options: KeepStart = {},
  ): Promise<KeepProcess> {
    const volume = new ConfigMapVolume(await Deno.makeTempDir({ prefix: "keep-volume-" }));
    await volume.write(list(...images));
    return new KeepProcess(volume, [
      "--cri-socket",
      stack.containerd.socket,
      "--image-list-file",
      volume.path("images"),
      "--log-format",
      "json",
      "--node-name",
      options.node ?? "keep-node",
      ...options.args ?? [],
    ], options.env); // deno-fmt-ignore
  }

  private constructor(
    volume: ConfigMapVolume,
    args: string[],
    env: Record<string, string> = {},
  ) {
    this.volume = volume;
    this.#process = new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", ...PERMISSION_FLAGS, MAIN, "keep", ...args],
      env: { NO_COLOR: "1", ...env },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.#reading = this.#read();
  }

  async #read(): Promise<void> {
    let rest = "";
    for await (const chunk of this.#process.stderr.pipeThrough(new TextDecoderStream())) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop()!;
      for (const line of parts) {
        try {
          this.lines.push(JSON.parse(line));
        } catch {
          this.lines.push({ msg: line });
        }
      }
    }
  }

  /** How many lines say `msg`. */
  count(msg: string): number {
    return this.lines.filter((l) => l.msg === msg).length;
  }

  /** Sends SIGTERM; resolves with the exit status and how long the exit took. */
  async terminate(): Promise<{ code: number; ms: number }> {
    const start = performance.now();
    this.#process.kill("SIGTERM");
    const { code } = await this.#process.status;
    const ms = performance.now() - start;
    await this.#reading;
    return { code, ms };
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.#process.kill("SIGKILL");
    } catch { /* exited */ }
    await this.#process.status;
    await this.#reading;
    await Deno.remove(this.volume.dir, { recursive: true });
  }
}

/** Whether `image` is pinned by this test's owner: CRI's flag on 1.7, the labels on 1.6. */
async function pinState(
  stack: Stack,
  reference: string,
): Promise<{ id?: string; pinned: boolean; ours: boolean }> {
  using cri = new CriClient(stack.containerd.socket);
  const status = await cri.imageStatus(reference);
  if (!status) return { pinned: false, ours: false };
  return { id: status.id, ...await idPinState(stack, status.id) };
}

async function idPinState(stack: Stack, id: string): Promise<{ pinned: boolean; ours: boolean }> {
  using cri = new CriClient(stack.containerd.socket);
  using images = new ContainerdImages(stack.containerd.socket);
  const labels = await images.labels(id);
  const labelled = labels[PINNED_LABEL_KEY] === "pinned";
  const reports = stack.containerdVersion.version !== "1.6.20";
  const pinned = reports ? (await cri.imageStatus(id))?.pinned === true : labelled;
  if (reports) assert.equal(pinned, labelled, `CRI and the labels disagree on ${id}`);
  return { pinned, ours: labels[ownerLabelKey(OWNER)] === "true" };
}

function list(...images: string[]): Record<string, string> {
  return { images: images.length === 0 ? "" : images.join("\n") + "\n" };
}

testEachContainerd(
  "keep follows the ConfigMap, pins what is listed, releases only its own pins, refreshes tags",
  async (t, containerd) => {
    await using stack = await startStack({ containerd });
    const host = stack.registry.host;
    const [a, b, c, m] = await Promise.all(
      ["a", "b", "c", "m"].map((name) =>
        stack.pushImage({ repository: `keep/${name}`, tag: "v1" })
      ),
    );
    const [refA, refB, refC, refM] = [a, b, c, m].map((image) => image.reference(host));
    // c is on the node and pinned by someone else before keep starts.
    using cri = new CriClient(stack.containerd.socket);
    await cri.pullImage(refC);
    using images = new ContainerdImages(stack.containerd.socket);
    await images.pin(c.configDigest);

    await using keep = await KeepProcess.start(stack, [refA, refM, refC], {
      args: [
        "--pin",
        "--pin-owner",
        OWNER,
        "--refresh-interval",
        "4s",
        "--stall-timeout",
        "2s",
      ],
    }); // deno-fmt-ignore

    await t.step("the first cycle pulls and pins the list, joining another's pin", async () => {
      assert.ok(await waitUntil(async () => (await pinState(stack, refM)).ours, { timeoutMs: 30_000 }));
      for (const ref of [refA, refM, refC]) {
        assert.deepEqual((await pinState(stack, ref)).pinned, true, ref);
      }
    });

    await t.step("an added image lands and is pinned within seconds of the swap", async () => {
      await keep.volume.write(list(refA, refM, refC, refB));
      const landed = await waitUntil(async () => (await pinState(stack, refB)).ours, {
        timeoutMs: 15_000,
      });
      assert.ok(landed, JSON.stringify(keep.lines.slice(-10)));
      assert.equal((await pinState(stack, refB)).pinned, true);
    });

    await t.step(
      "a removed image is unpinned; one pinned by someone else stays pinned",
      async () => {
        await keep.volume.write(list(refM, refB));
        assert.ok(
          await waitUntil(async () => !(await pinState(stack, refA)).pinned, { timeoutMs: 15_000 }),
        );
        assert.ok(
          await waitUntil(async () => !(await pinState(stack, refC)).ours, { timeoutMs: 15_000 }),
        );
        assert.deepEqual(await pinState(stack, refC), {
          id: c.configDigest,
          pinned: true,
          ours: false,
        });
        assert.ok(await cri.imageStatus(refA), "keep leaves removal to the kubelet's GC");
      },
    );

    await t.step("an edit with a bad line logs one error and keeps the good images", async () => {
      const errorsBefore = keep.count("invalid image reference");
      await keep.volume.write({ images: `${refM}\nNot A Valid//Reference\n${refB}\n` });
      assert.ok(await waitUntil(() => keep.count("invalid image reference") > errorsBefore));
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      for (const ref of [refM, refB]) assert.equal((await pinState(stack, ref)).pinned, true, ref);
      const bad = keep.lines.filter((l) => l.msg === "invalid image reference").at(-1)!;
      assert.match(String(bad.source), /images:2/);
    });

    await t.step(
      "a tag moved in the registry lands at the next refresh; only it is pinned",
      async () => {
        const moved = await stack.pushImage({ repository: "keep/m", tag: "v1", seed: "moved" });
        assert.notEqual(moved.configDigest, m.configDigest);
        const refreshed = await waitUntil(async () => {
          const state = await pinState(stack, refM);
          return state.id === moved.configDigest && state.pinned && state.ours;
        }, { timeoutMs: 20_000 });
        assert.ok(refreshed, JSON.stringify(keep.lines.slice(-10)));
        assert.ok(await waitUntil(async () => !(await idPinState(stack, m.configDigest)).pinned));
      },
    );

    await t.step(
      "SIGTERM mid-pull: exits 0 within two seconds, nothing half-done pinned",
      async () => {
        stack.proxy.setFaults({ stall: {} });
        const slow = await stack.pushImage({ repository: "keep/slow", tag: "v1" });
        const refSlow = slow.reference(stack.proxy.host);
        await keep.volume.write(list(refM, refB, refSlow));
        assert.ok(await waitUntil(() => stack.proxy.requests.some((r) => r.stalled)));
        const { code, ms } = await keep.terminate();
        assert.equal(code, 0);
        assert.ok(ms < 2_000, `took ${ms} ms`);
        assert.equal(await cri.imageStatus(refSlow), undefined);
        assert.deepEqual(
          await images.pinnedBy(OWNER).then((n) => n.sort()),
          [
            (await cri.imageStatus(refB))!.id,
            (await cri.imageStatus(refM))!.id,
          ].sort(),
        );
        stack.proxy.setFaults({});
      },
    );
  },
);

testEachContainerd(
  "a failed image becomes one Event on the pod, from fetch, and counted by each keep cycle",
  async (_t, containerd) => {
    await using stack = await startStack({ containerd });
    await using api = await startApiFixture();
    const pod = { POD_NAME: "my-images-abcde", POD_NAMESPACE: "prefetch", POD_UID: "uid-1" };
    const env = { ...api.env, ...pod };
    const missing = `${stack.registry.host}/keep/missing:v1`;
    const saDir = ["--service-account-dir", api.serviceAccountDir];
    const run = await runProgram(
      [...jsonFetchArgs(stack.containerd.socket), ...saDir, "--node-name", "node-a", missing],
      { env },
    );
    assert.equal(run.code, 0, run.stderr);
    assert.equal(api.server.events.size, 1);
    const [event] = api.server.events.values();
    assert.equal(event.reason, "ImageNotFound");
    assert.equal(event.involvedObject.name, pod.POD_NAME);
    assert.equal(event.involvedObject.uid, pod.POD_UID);
    assert.match(event.message, /keep\/missing:v1 is not on node node-a: not found/);

    await using keep = await KeepProcess.start(stack, [missing], {
      node: "node-a",
      args: [...saDir, "--refresh-interval", "2s"],
      env,
    });
    const counted = await waitUntil(() => [...api.server.events.values()][0].count >= 3, {
      timeoutMs: 20_000,
    });
    assert.ok(counted, JSON.stringify(keep.lines.slice(-5)));
    assert.equal(api.server.events.size, 1, "each cycle counts the same Event");
    assert.equal((await keep.terminate()).code, 0);
  },
);

testEachContainerd(
  "each keep cycle is a run: its pulls go through waves and reach aggregate-metrics",
  async (_t, containerd) => {
    await using stack = await startStack({ containerd });
    const tokenFile = await Deno.makeTempFile();
    await Deno.writeTextFile(tokenFile, "keep-e2e-token\n");
    await using server = await startMetricsServerProcess({
      args: ["--waves", "--token-file", tokenFile],
    });
    const image = await stack.pushImage({ repository: "keep/metrics", tag: "v1" });
    const ref = image.reference(stack.registry.host);
    await using keep = await KeepProcess.start(stack, [], {
      args: [
        "--waves",
        "--metrics-endpoint",
        `127.0.0.1:${server.grpcPort}`,
        "--metrics-token-file",
        tokenFile,
      ],
    });
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    await keep.volume.write(list(ref));
    using cri = new CriClient(stack.containerd.socket);
    assert.ok(await waitUntil(async () => (await cri.imageStatus(ref)) !== undefined));
    const summary = async () => {
      const response = await fetch(`${server.url}/summary`, {
        headers: { authorization: "Bearer keep-e2e-token" },
      });
      return await response.json();
    };
    // The cycle's attempt reached the server, and the coordinator knows the node has the image.
    const reported = await waitUntil(async () => {
      const now = await summary();
      return now.results > 0 && now.waves.images.some((i: { have: number }) => i.have === 1);
    });
    assert.ok(
      reported,
      `${JSON.stringify(await summary())}\n${JSON.stringify(keep.lines.slice(-8))}`,
    );
    const text = JSON.stringify(await summary());
    assert.ok(text.includes(ref) && text.includes("keep-node"), text);
    const admitted = keep.lines.filter((l) => /waves|coordinator/i.test(String(l.msg)));
    assert.deepEqual(admitted.filter((l) => l.level === "warn"), [], "waves answered every cycle");
    assert.equal((await keep.terminate()).code, 0);
    await Deno.remove(tokenFile);
  },
);
