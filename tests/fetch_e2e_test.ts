/**
 * `fetch` end to end: the real program (a subprocess through `main.ts`) against a real
 * containerd (CRI plugin) and a real registry, behind the test tooling's fault proxy.
 */
import assert from "node:assert/strict";
import { CriClient } from "../lib/runtime/cri_client.ts";
import {
  type PushedImage,
  type Stack,
  startStack,
  testEachContainerd,
} from "../testing/stack/stack.ts";
import {
  jsonFetchArgs,
  type ProgramRun,
  runProgram,
  spawnProgram,
} from "../testing/prefetcher_process.ts";

/** Runs `fetch` against the stack's containerd with JSON logs and short, test-sized timings. */
function fetchOn(stack: Stack, args: string[]): Promise<ProgramRun> {
  return runProgram(fetchArgs(stack, args));
}

function fetchArgs(stack: Stack, args: string[]): string[] {
  return [
    ...jsonFetchArgs(stack.containerd.socket),
    "--node-name",
    "test-node",
    ...args,
  ];
}

async function writeList(lines: string[], eol = "\n"): Promise<string> {
  const file = await Deno.makeTempFile({ prefix: "images-", suffix: ".txt" });
  await Deno.writeTextFile(file, lines.join(eol) + eol);
  return file;
}

async function assertOnNode(stack: Stack, images: string[]): Promise<void> {
  using cri = new CriClient(stack.containerd.socket);
  for (const image of images) {
    const status = await cri.imageStatus(image);
    assert.ok(status, `${image} is not on the node`);
  }
}

function describe(run: ProgramRun): string {
  return `exit ${run.code}\nstdout:\n${run.stdout}\nstderr:\n${run.stderr}`;
}

testEachContainerd("fetch pulls through the real CRI", async (t, containerd) => {
  await using stack = await startStack({ containerd });
  const via = (image: PushedImage) => image.reference(stack.proxy.host);

  const images = await Promise.all([
    stack.pushImage({ repository: "e2e/alpha", tag: "v1", layers: 2, layerBytes: 256 << 10 }),
    stack.pushImage({ repository: "e2e/beta", tag: "v1", layerBytes: 1 << 20 }),
    stack.pushImage({ repository: "e2e/gamma/deep", tag: "v1" }),
  ]);
  const list = await writeList([
    "# images for the e2e test",
    "",
    via(images[0]),
    `  ${via(images[1])}   # trailing comment`,
    via(images[0]), // a duplicate
  ], "\r\n");

  await t.step("every image of a list ends up on the node, duplicates pulled once", async () => {
    stack.proxy.resetCounters();
    const run = await fetchOn(stack, ["--image-list-file", list, via(images[2])]);
    assert.equal(run.code, 0, describe(run));
    assert.deepEqual(
      run.summary?.images.map((i) => [i.image, i.status]),
      images.map((i) => [via(i), "pulled"]),
    );
    await assertOnNode(stack, images.map(via));
    // Every blob crossed the wire once: the registry served about the images' size.
    const imageBytes = images.reduce((sum, i) => sum + i.sizeBytes, 0);
    assert.ok(
      stack.proxy.bytesServed >= imageBytes * 0.95 && stack.proxy.bytesServed <= imageBytes * 1.1,
      `registry served ${stack.proxy.bytesServed} bytes for ${imageBytes} bytes of images`,
    );
    const started = run.events.filter((e) => e.msg === "pull attempt started");
    assert.equal(started.length, 3);
    for (const event of started) {
      assert.ok(event.image && event.attempt === 1 && event.timeout && event.elapsed, "fields");
    }
  });

  await t.step("a re-run pulls nothing and asks the registry nothing", async () => {
    stack.proxy.resetCounters();
    const again = await fetchOn(stack, ["--image-list-file", list, via(images[2])]);
    assert.equal(again.code, 0, describe(again));
    assert.deepEqual(again.summary?.images.map((i) => i.status), [
      "present",
      "present",
      "present",
    ]);
    assert.equal(stack.proxy.requests.length, 0, "a present image cost a registry request");
  });

  await t.step("--pull-policy Always pulls present images again", async () => {
    const forced = await fetchOn(stack, ["--pull-policy", "Always", via(images[1])]);
    assert.equal(forced.code, 0, describe(forced));
    assert.equal(forced.summary?.pulled, 1);
  });
  await Deno.remove(list);

  await t.step("a latest tag is pulled again unless --pull-policy IfNotPresent", async () => {
    const latest = await stack.pushImage({ repository: "e2e/floating" });
    assert.equal((await fetchOn(stack, [via(latest)])).summary?.pulled, 1);
    const again = await fetchOn(stack, [via(latest)]);
    assert.equal(again.summary?.pulled, 1, describe(again));
    stack.proxy.resetCounters();
    const skipped = await fetchOn(stack, ["--pull-policy", "IfNotPresent", via(latest)]);
    assert.equal(skipped.summary?.present, 1, describe(skipped));
    assert.equal(stack.proxy.requests.length, 0);
  });

  await t.step("an unknown image is reported failed while the others are pulled", async () => {
    const good = await stack.pushImage({ repository: "e2e/good", tag: "v1" });
    const missing = `${stack.proxy.host}/e2e/does-not-exist:v1`;
    const run = await fetchOn(stack, [missing, via(good)]);
    assert.equal(run.code, 0, `best effort by default: ${describe(run)}`);
    const [failed, pulled] = run.summary!.images;
    assert.equal(failed.status, "failed");
    assert.equal(failed.failure, "permanent");
    assert.equal(failed.attempts, 1, "a missing image is not retried");
    assert.match(failed.error!, /not found/);
    assert.equal(pulled.status, "pulled");
    await assertOnNode(stack, [via(good)]);

    const strict = await fetchOn(stack, ["--strict", missing, via(good)]);
    assert.equal(strict.code, 1, describe(strict));
  });

  await t.step("a bad line is named and exits 2, but the valid images are pulled", async () => {
    const good = await stack.pushImage({ repository: "e2e/after-bad-line", tag: "v1" });
    const list = await writeList([via(good), "Not/A Valid:Ref"]);
    const run = await fetchOn(stack, ["--image-list-file", list]);
    assert.equal(run.code, 2, describe(run));
    assert.equal(run.summary?.pulled, 1);
    assert.equal(run.summary?.invalid, 1);
    const problem = run.events.find((e) => e.msg === "invalid image reference");
    assert.equal(problem?.source, `${list}:2`);
    assert.match(String(problem?.error), /"Not\/A Valid:Ref" is not a valid image reference/);
    await assertOnNode(stack, [via(good)]);
    await Deno.remove(list);
  });

  await t.step(
    "--progress off: a stalled connection is cut at the attempt timeout and retried",
    async () => {
      const image = await stack.pushImage({
        repository: "e2e/stalled",
        tag: "v1",
        layerBytes: 1 << 20,
      });
      // The first blob request gets its headers and 64 KiB, then nothing more.
      stack.proxy.setFaults({ stall: { count: 1, afterBytes: 64 << 10 } });
      const started = performance.now();
      const run = await fetchOn(stack, [
        "--progress",
        "off",
        "--initial-pull-attempt-timeout",
        "3s",
        "--initial-pull-attempt-delay",
        "500ms",
        via(image),
      ]);
      const seconds = (performance.now() - started) / 1000;
      stack.proxy.setFaults({});
      assert.equal(run.code, 0, describe(run));
      const [result] = run.summary!.images;
      assert.equal(result.status, "pulled");
      assert.equal(result.attempts, 2);
      const failedAttempt = run.events.find((e) => e.msg === "pull attempt failed");
      assert.match(String(failedAttempt?.error), /timed out after 3s/);
      assert.ok(stack.proxy.requests.some((r) => r.stalled), "the proxy did stall a request");
      // 3 s attempt + ~0.5 s delay + a quick second attempt, with room for a slow machine.
      assert.ok(seconds < 20, `took ${seconds.toFixed(1)} s`);
      await assertOnNode(stack, [via(image)]);
    },
  );

  await t.step(
    "the overall timeout ends a run that cannot finish, reporting each image",
    async () => {
      const image = await stack.pushImage({ repository: "e2e/never", tag: "v1" });
      stack.proxy.setFaults({ stall: {} });
      const run = await fetchOn(stack, [
        "--initial-pull-attempt-timeout",
        "1s",
        "--initial-pull-attempt-delay",
        "200ms",
        "--overall-timeout",
        "4s",
        via(image),
      ]);
      stack.proxy.setFaults({});
      assert.equal(run.code, 0, describe(run));
      const [result] = run.summary!.images;
      assert.equal(result.status, "failed");
      assert.equal(result.failure, "overall-timeout");
      assert.ok(result.attempts >= 2, `only ${result.attempts} attempts`);
      assert.ok(run.summary!.wallMs < 6_000, `ran ${run.summary!.wallMs} ms with a 4 s bound`);
    },
  );

  await t.step("SIGTERM stops fetch promptly with its summary and exit 143", async () => {
    const image = await stack.pushImage({ repository: "e2e/interrupted", tag: "v1" });
    stack.proxy.setFaults({ stall: {} });
    const running = spawnProgram(fetchArgs(stack, [via(image)]));
    await waitForRequest(stack, "/e2e/interrupted/blobs/");
    const sent = performance.now();
    running.process.kill("SIGTERM");
    const run = await running.finished;
    const stopMs = performance.now() - sent;
    stack.proxy.setFaults({});
    assert.equal(run.code, 143, describe(run));
    assert.equal(run.summary?.images[0].failure, "interrupted");
    assert.ok(stopMs < 3_000, `took ${stopMs.toFixed(0)} ms to stop`);
  });
});

/**
 * What each containerd says when a registry refuses an anonymous pull (both are failed at once,
 * without retries): 1.6 quotes the registry's status, 1.7 and 2.1 their own reading of it.
 */
const ANONYMOUS_PULL_DENIED: Record<string, RegExp> = {
  "1.6.20": /pulling from host \S+ failed with status code \[manifests v1\]: 401 Unauthorized$/,
  "1.7.24":
    /pull access denied, repository does not exist or may require authorization: authorization failed: no basic auth credentials$/,
  "2.1.9":
    /pull access denied, repository does not exist or may require authorization: authorization failed: no basic auth credentials$/,
};

testEachContainerd("fetch with registry credentials", async (t, containerd) => {
  const credentials = { username: "prefetch", password: "s3cret-Pa55word" };
  await using stack = await startStack({ registryAuth: credentials, containerd });
  const image = await stack.pushImage({ repository: "private/app", tag: "v1" });
  const reference = image.reference(stack.registry.host);
  const auth = btoa(`${credentials.username}:${credentials.password}`);
  const wrong = btoa(`${credentials.username}:wrong-password`);

  await t.step("without a docker config the pull fails clearly, once", async () => {
    const run = await fetchOn(stack, [reference]);
    const [result] = run.summary!.images;
    assert.equal(result.status, "failed", describe(run));
    assert.equal(result.failure, "permanent");
    assert.match(result.error!, ANONYMOUS_PULL_DENIED[containerd.version]);
  });

  await t.step("credentials are matched like the kubelet and tried in turn", async () => {
    // The more specific path key is tried first (and is wrong), then the host key.
    const config = await Deno.makeTempFile({ suffix: ".json" });
    await Deno.writeTextFile(
      config,
      JSON.stringify({
        auths: {
          [`${stack.registry.host}/private`]: { auth: wrong },
          [`http://${stack.registry.host}`]: { auth },
          "other.example.com": { username: "x", password: "y" },
        },
      }),
    );
    const run = await fetchOn(stack, ["--docker-config", config, "--debug", reference]);
    assert.equal(run.code, 0, describe(run));
    assert.equal(run.summary?.pulled, 1, describe(run));
    assert.equal(run.summary?.images[0].attempts, 1);
    await assertOnNode(stack, [reference]);
    const matches = run.events.filter((e) => e.msg === "credential matches");
    assert.equal(matches.length, 2);
    for (const secret of [credentials.password, auth, wrong, "wrong-password"]) {
      assert.ok(!run.stderr.includes(secret), "a secret appeared in the logs");
      assert.ok(!run.stdout.includes(secret), "a secret appeared in the summary");
    }
    await Deno.remove(config);
  });
});

async function waitForRequest(stack: Stack, pathPart: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (stack.proxy.requests.some((r) => r.path.includes(pathPart))) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no request for ${pathPart} reached the proxy in 15 s`);
}
