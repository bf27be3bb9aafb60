/**
 * Kubelet credential provider plugins end to end: the real program against a real containerd and
 * a registry that requires basic auth, with the test plugin (`testing/credential_provider_plugin.ts`)
 * counting its calls.
 */
import assert from "node:assert/strict";
import { startStack, testEachContainerd } from "../testing/stack/stack.ts";
import {
  type ProviderSetup,
  type TestProvider,
  writeProviderSetup,
} from "../testing/credential_providers.ts";
import {
  jsonFetchArgs,
  type ProgramRun,
  runProgram,
  spawnProgram,
} from "../testing/prefetcher_process.ts";

const USER = "prefetch";
const PASSWORD = "plugin-S3cret-pw";

function describe(run: ProgramRun): string {
  return `exit ${run.code}\nstdout:\n${run.stdout}\nstderr:\n${run.stderr}`;
}

function assertNoSecret(run: ProgramRun, secrets: string[]): void {
  for (const secret of secrets) {
    assert.ok(!run.stderr.includes(secret), `a secret appeared in the logs:\n${run.stderr}`);
    assert.ok(!run.stdout.includes(secret), "a secret appeared in the summary");
  }
}

Deno.test("fetch with kubelet credential provider plugins", async (t) => {
  await using stack = await startStack({ registryAuth: { username: USER, password: PASSWORD } });
  const host = stack.registry.host;
  const pushed = await Promise.all([
    stack.pushImage({ repository: "cp/a", tag: "v1" }),
    stack.pushImage({ repository: "cp/a", tag: "v2" }),
    stack.pushImage({ repository: "cp/b", tag: "v1" }),
  ]);
  const direct = pushed.map((image) => image.reference(host));
  const viaProxy = pushed[2].reference(stack.proxy.host);
  const good = { [host]: { username: USER, password: PASSWORD } };
  const goodBoth = { ...good, [stack.proxy.host]: { username: USER, password: PASSWORD } };

  /** Runs fetch with `providers` (and `args`), always pulling so each run asks for credentials. */
  async function fetchWith(
    providers: TestProvider[],
    images: string[],
    args: string[] = [],
  ): Promise<{ run: ProgramRun; setup: ProviderSetup }> {
    const setup = await writeProviderSetup(providers);
    const run = await runProgram([
      ...jsonFetchArgs(stack.containerd.socket),
      "--node-name",
      "test-node",
      ...(args.includes("--pull-policy") ? [] : ["--pull-policy", "Always"]),
      "--overall-timeout",
      "1m",
      "--image-credential-provider-config",
      setup.configPath,
      "--image-credential-provider-bin-dir",
      setup.binDir,
      ...args,
      ...images,
    ]);
    return { run, setup };
  }

  const statuses = (run: ProgramRun) => run.summary?.images.map((i) => i.status);

  await t.step("a matching plugin's credentials pull; one call for a registry", async () => {
    const { run, setup } = await fetchWith(
      [{
        name: "test-plugin",
        matchImages: [host],
        args: ["--region", "test-1"],
        plugin: { auth: good, cacheKeyType: "Registry", cacheDuration: "1h" },
      }],
      direct,
      ["--debug"],
    );
    await using _ = setup;
    assert.equal(run.code, 0, describe(run));
    assert.deepEqual(statuses(run), ["pulled", "pulled", "pulled"], describe(run));
    const calls = await setup.calls("test-plugin");
    assert.equal(calls.length, 1, describe(run));
    assert.deepEqual(calls[0].args, ["--region", "test-1"]);
    assert.equal(calls[0].request.kind, "CredentialProviderRequest");
    assert.equal(calls[0].request.apiVersion, "credentialprovider.kubelet.k8s.io/v1");
    // The kubelet asks about the repository, without tag.
    assert.ok([`${host}/cp/a`, `${host}/cp/b`].includes(calls[0].request.image));
    assertNoSecret(run, [PASSWORD, btoa(`${USER}:${PASSWORD}`)]);
  });

  await t.step("a plugin whose matchImages do not match is not run", async () => {
    const { run, setup } = await fetchWith([{
      name: "elsewhere",
      matchImages: ["*.example.com", `${host}/other`, "127.0.0.1"],
      plugin: { auth: good },
    }], [direct[0]]);
    await using _ = setup;
    assert.equal((await setup.calls("elsewhere")).length, 0);
    assert.deepEqual(statuses(run), ["failed"], describe(run));
    assert.match(run.summary!.images[0].error!, /401|unauthorized/i);
  });

  await t.step("an image already on the node runs no plugin", async () => {
    const { run, setup } = await fetchWith(
      [{
        name: "unneeded",
        matchImages: [host],
        plugin: { auth: good, cacheDuration: "1h" },
      }],
      [direct[0]],
      ["--pull-policy", "IfNotPresent"],
    );
    await using _ = setup;
    assert.deepEqual(statuses(run), ["present"], describe(run));
    assert.equal((await setup.calls("unneeded")).length, 0);
  });

  await t.step("cacheKeyType Image: one call per repository, tags share it", async () => {
    const { run, setup } = await fetchWith(
      [{
        name: "per-image",
        matchImages: [host],
        plugin: { auth: good, cacheKeyType: "Image", cacheDuration: "1h" },
      }],
      direct,
      ["--max-parallel", "1"],
    );
    await using _ = setup;
    assert.deepEqual(statuses(run), ["pulled", "pulled", "pulled"], describe(run));
    const images = (await setup.calls("per-image")).map((c) => c.request.image).sort();
    assert.deepEqual(images, [`${host}/cp/a`, `${host}/cp/b`]);
  });

  await t.step("cacheKeyType Registry: one call per registry; Global: one call", async () => {
    const matchImages = [host, stack.proxy.host];
    for (const [cacheKeyType, expected] of [["Registry", 2], ["Global", 1]] as const) {
      const { run, setup } = await fetchWith([{
        name: "keyed",
        matchImages,
        plugin: { auth: goodBoth, cacheKeyType, cacheDuration: "1h" },
      }], [...direct, viaProxy]);
      await using _ = setup;
      assert.deepEqual(statuses(run), ["pulled", "pulled", "pulled", "pulled"], describe(run));
      assert.equal(
        (await setup.calls("keyed")).length,
        expected,
        `${cacheKeyType}: ${describe(run)}`,
      );
    }
  });

  await t.step("expired or uncached answers make the plugin run again", async () => {
    const cases: Array<[string, Partial<TestProvider>, string | undefined, number]> = [
      ["cacheDuration 1ms expires before the next image", {}, "1ms", 3],
      ["no cacheDuration and defaultCacheDuration 0s: not cached", {}, undefined, 3],
      ["cacheDuration 0s: not cached", { defaultCacheDuration: "1h" }, "0s", 3],
      [
        "no cacheDuration: defaultCacheDuration 1h applies",
        { defaultCacheDuration: "1h" },
        undefined,
        1,
      ],
    ];
    for (const [what, provider, cacheDuration, expected] of cases) {
      const { run, setup } = await fetchWith(
        [{
          name: "expiring",
          matchImages: [host],
          ...provider,
          plugin: { auth: good, cacheKeyType: "Global", cacheDuration },
        }],
        direct,
        ["--max-parallel", "1"],
      );
      await using _ = setup;
      assert.deepEqual(statuses(run), ["pulled", "pulled", "pulled"], `${what}: ${describe(run)}`);
      assert.equal((await setup.calls("expiring")).length, expected, what);
    }
  });

  await t.step(
    "pulling an image already on the node again asks the registry for its manifest only",
    async () => {
      // What a kubelet's credential verification (KEP-2535) costs for a prefetched image.
      const provider = {
        name: "verify",
        matchImages: [stack.proxy.host],
        plugin: { auth: goodBoth, cacheDuration: "1h" },
      };
      const first = await fetchWith([provider], [viaProxy]);
      await using _first = first.setup;
      assert.deepEqual(statuses(first.run), ["pulled"], describe(first.run));
      stack.proxy.resetCounters();
      const again = await fetchWith([provider], [viaProxy]);
      await using _again = again.setup;
      assert.deepEqual(statuses(again.run), ["pulled"], describe(again.run));
      const paths = stack.proxy.requests.map((r) => r.path);
      assert.ok(paths.length > 0, "the second pull asked the registry nothing");
      assert.ok(paths.every((p) => p.includes("/manifests/")), paths.join("\n"));
    },
  );

  await t.step(
    "a failing, hanging or garbage-printing plugin: one warning, pulls go on",
    async () => {
      const dockerConfig = await Deno.makeTempFile({ suffix: ".json" });
      await Deno.writeTextFile(
        dockerConfig,
        // host:port without a scheme, the usual form of a pull secret's key.
        JSON.stringify({ auths: { [host]: { username: USER, password: PASSWORD } } }),
      );
      const secretGarbage = "GARBAGE-token-123";
      const modes = [["fail", /exited with 1: no credentials for .* 503/], [
        "hang",
        /no answer within 1s/,
      ], ["garbage", /not a CredentialProviderResponse|neither JSON nor YAML/]] as const;
      for (const [mode, why] of modes) {
        const { run, setup } = await fetchWith(
          [{
            name: `broken-${mode}`,
            matchImages: [host],
            plugin: { mode, garbage: secretGarbage },
          }],
          direct.slice(0, 2),
          [
            "--docker-config",
            dockerConfig,
            "--image-credential-provider-timeout",
            "1s",
          ],
        );
        await using _ = setup;
        assert.equal(run.code, 0, describe(run));
        assert.deepEqual(statuses(run), ["pulled", "pulled"], `${mode}: ${describe(run)}`);
        const warnings = run.events.filter((e) =>
          e.msg.startsWith("credential provider plugin gave")
        );
        // One warning per image, naming the plugin and the image; a hung plugin is not run again.
        assert.equal(warnings.length, 2, `${mode}: ${describe(run)}`);
        for (const warning of warnings) {
          assert.equal(warning.plugin, `broken-${mode}`);
          assert.equal(warning.image, `${host}/cp/a`);
        }
        assert.match(String(warnings[0].error), why, `${mode}: ${describe(run)}`);
        assert.equal((await setup.calls(`broken-${mode}`)).length, mode === "hang" ? 1 : 2);
        assertNoSecret(run, [secretGarbage, PASSWORD]);
      }
      await Deno.remove(dockerConfig);
    },
  );

  await t.step(
    "SIGTERM while a plugin hangs: the plugin is killed, fetch stops at once",
    async () => {
      const setup = await writeProviderSetup([{
        name: "stuck",
        matchImages: [host],
        plugin: { mode: "hang" },
      }]);
      await using _ = setup;
      const program = spawnProgram([
        ...jsonFetchArgs(stack.containerd.socket),
        "--pull-policy",
        "Always",
        "--image-credential-provider-config",
        setup.configPath,
        "--image-credential-provider-bin-dir",
        setup.binDir,
        direct[0],
      ]);
      for (let i = 0; i < 200 && (await setup.calls("stuck")).length === 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.equal((await setup.calls("stuck")).length, 1, "the plugin never started");
      const stoppedAt = performance.now();
      program.process.kill("SIGTERM");
      const run = await program.finished;
      const stopMs = performance.now() - stoppedAt;
      assert.equal(run.code, 143, describe(run));
      // Not the 1m plugin timeout: the plugin was killed when the run ended.
      assert.ok(stopMs < 10_000, `took ${stopMs.toFixed(0)} ms to stop`);
      assert.ok(!run.events.some((e) => e.msg.startsWith("credential provider plugin gave")));
    },
  );

  await t.step("docker config and plugin credentials together, docker config first", async () => {
    const dockerConfig = await Deno.makeTempFile({ suffix: ".json" });
    await Deno.writeTextFile(
      dockerConfig,
      JSON.stringify({
        auths: { [host]: { username: USER, password: "wrong-docker-pw" } },
      }),
    );
    const { run, setup } = await fetchWith(
      [{
        name: "good-plugin",
        matchImages: [host],
        plugin: { auth: good, cacheDuration: "1h" },
      }],
      [direct[0]],
      ["--docker-config", dockerConfig, "--debug"],
    );
    await using _ = setup;
    assert.equal(run.code, 0, describe(run));
    assert.deepEqual(statuses(run), ["pulled"], describe(run));
    const order = run.events.filter((e) => e.msg === "credential matches").map((e) =>
      String(e.credential)
    );
    assert.equal(order.length, 2, describe(run));
    assert.doesNotMatch(order[0], /credential provider/);
    assert.match(order[1], /credential provider/);
    assertNoSecret(run, [PASSWORD, "wrong-docker-pw"]);
    await Deno.remove(dockerConfig);
  });

  await t.step("a config the kubelet would refuse stops the run with exit 2", async () => {
    const setup = await writeProviderSetup([{ name: "p", matchImages: [host], plugin: {} }]);
    await using _ = setup;
    const text = await Deno.readTextFile(setup.configPath);
    await Deno.writeTextFile(
      setup.configPath,
      text.replace("kubelet.config.k8s.io/v1", "kubelet.config.k8s.io/v1beta1"),
    );
    const run = await runProgram([
      ...jsonFetchArgs(stack.containerd.socket),
      "--image-credential-provider-config",
      setup.configPath,
      "--image-credential-provider-bin-dir",
      setup.binDir,
      direct[0],
    ]);
    assert.equal(run.code, 2, describe(run));
    assert.match(run.stderr, /v1beta1.*; only kubelet.config.k8s.io\/v1 is read/);
    const missing = await runProgram([
      ...jsonFetchArgs(stack.containerd.socket),
      "--image-credential-provider-config",
      setup.configPath.replace(/[^/]+$/, "nope.yaml"),
      "--image-credential-provider-bin-dir",
      setup.binDir,
      direct[0],
    ]);
    assert.equal(missing.code, 2, describe(missing));
    assert.match(missing.stderr, /Cannot read the credential provider config/);
  });
});

testEachContainerd(
  "a plugin answer the registry refuses is renewed once, bypassing the cache; then it is final",
  async (t, containerd) => {
    await using stack = await startStack({
      registryAuth: { username: USER, password: PASSWORD },
      containerd,
    });
    const host = stack.registry.host;
    const image = (await stack.pushImage({ repository: "cp/renew", tag: "v1" })).reference(host);
    const good = { [host]: { username: USER, password: PASSWORD } };
    const wrong = { [host]: { username: USER, password: "expired-pw" } };
    const cases = [
      ["wrong, then right: lands in the second attempt", [wrong, good], "pulled"],
      ["always wrong: fails after exactly two attempts", [wrong], "failed"],
    ] as const;
    for (const [what, authSequence, status] of cases) {
      await t.step(what, async () => {
        await using setup = await writeProviderSetup([{
          name: "renewing",
          matchImages: [host],
          // Cached for an hour: only a renewal that bypasses the cache asks again.
          plugin: {
            authSequence: [...authSequence],
            cacheKeyType: "Registry",
            cacheDuration: "1h",
          },
        }]);
        const run = await runProgram([
          ...jsonFetchArgs(stack.containerd.socket),
          ...["--pull-policy", "Always", "--overall-timeout", "1m"],
          ...["--image-credential-provider-config", setup.configPath],
          ...["--image-credential-provider-bin-dir", setup.binDir],
          image,
        ]);
        const [result] = run.summary!.images;
        assert.equal(result.status, status, describe(run));
        assert.equal(result.attempts, 2, describe(run));
        if (status === "failed") {
          assert.equal(result.failure, "permanent");
          assert.match(result.error!, /401|unauthorized|denied/i);
        }
        assert.equal((await setup.calls("renewing")).length, 2);
        assert.ok(run.events.some((e) => e.msg.startsWith("the registry refused the plugins")));
        assertNoSecret(run, [PASSWORD, "expired-pw"]);
      });
    }
  },
);
