import assert from "node:assert/strict";
import { InvalidInputError } from "../lib/core/exit_codes.ts";
import { parseFetchArgs } from "./fetch.ts";

const env = { nodeName: undefined, hostname: () => "host-1" };

function run(args: string[], environment: Parameters<typeof parseFetchArgs>[1] = env) {
  const invocation = parseFetchArgs(args, environment);
  assert.equal(invocation.kind, "run");
  return invocation.kind === "run" ? invocation : assert.fail("not a run");
}

Deno.test("the defaults are the original tool's", () => {
  const { config, logFormat, debug } = run(["debian"]);
  assert.deepEqual(config, {
    criSocket: "/run/containerd/containerd.sock",
    imageListFile: undefined,
    images: ["debian"],
    dockerConfig: undefined,
    credentialProviders: undefined,
    nodeUpdates: undefined,
    imageListTimeoutMs: 60_000,
    criConnectTimeoutMs: 60_000,
    schedule: {
      initialAttemptTimeoutMs: 30_000,
      maxAttemptTimeoutMs: 300_000,
      initialDelayMs: 1_000,
      maxDelayMs: 600_000,
    },
    overallTimeoutMs: 1_200_000,
    progress: "auto",
    stallTimeoutMs: 10_000,
    progressIntervalMs: 10_000,
    maxParallel: 0,
    pullPolicy: undefined,
    nodeName: "host-1",
    strict: false,
    pin: false,
    pinOwner: "image-prefetcher",
  });
  assert.equal(logFormat, "text");
  assert.equal(debug, false);
});

Deno.test("--pin asks for the images to be pinned", () => {
  assert.equal(run(["--pin", "debian"]).config.pin, true);
});

Deno.test("the node name comes from --node-name, then NODE_NAME, then the host name", () => {
  assert.equal(run(["x"]).config.nodeName, "host-1");
  assert.equal(run(["x"], { ...env, nodeName: "from-env" }).config.nodeName, "from-env");
  assert.equal(
    run(["--node-name", "flag", "x"], { ...env, nodeName: "from-env" }).config.nodeName,
    "flag",
  );
});

Deno.test("flags take = or a separate value, before or after the images", () => {
  const { config } = run([
    "a:1",
    "--overall-timeout=1h30m",
    "--max-parallel",
    "4",
    "b:2",
    "--pull-policy=IfNotPresent",
    "--strict",
  ]);
  assert.deepEqual(config.images, ["a:1", "b:2"]);
  assert.equal(config.overallTimeoutMs, 5_400_000);
  assert.equal(config.maxParallel, 4);
  assert.equal(config.pullPolicy, "IfNotPresent");
  assert.equal(config.strict, true);
});

Deno.test("bad flag values are one sentence naming the flag and the fix", () => {
  for (
    const [args, pattern] of [
      [
        ["--initial-pull-attempt-timeout", "10m", "x"],
        /--initial-pull-attempt-timeout \(10m\) is longer than --max-pull-attempt-timeout \(5m\)/,
      ],
      [["--max-parallel", "two", "x"], /--max-parallel must be a whole number/],
      [["--log-format", "yaml", "x"], /--log-format must be text or json/],
      [["--metrics-endpoint", "http://x:1", "x"], /--metrics-endpoint must be host:port/],
      [["--overall-timeout", "soon", "x"], /--overall-timeout: /],
      [["--cri-socket"], /--cri-socket/],
    ] as const
  ) {
    assert.throws(() => parseFetchArgs([...args], env), (error: Error) => {
      assert.ok(error instanceof InvalidInputError, `${args.join(" ")}: ${error}`);
      assert.match(error.message, pattern);
      return true;
    });
  }
});

Deno.test("--help asks for the help text whatever else is given", () => {
  assert.deepEqual(parseFetchArgs(["--help", "--max-parallel", "x"], env), { kind: "help" });
});

Deno.test("the credential provider flags go together, with the kubelet's 1m call timeout", () => {
  const { config } = run([
    "--image-credential-provider-config",
    "/etc/eks/image-credential-provider/config.json",
    "--image-credential-provider-bin-dir",
    "/etc/eks/image-credential-provider",
    "debian",
  ]);
  assert.deepEqual(config.credentialProviders, {
    configPath: "/etc/eks/image-credential-provider/config.json",
    binDir: "/etc/eks/image-credential-provider",
    timeoutMs: 60_000,
  });
  for (
    const args of [
      ["--image-credential-provider-config", "/c.yaml"],
      ["--image-credential-provider-bin-dir", "/bin"],
    ]
  ) {
    assert.throws(() => parseFetchArgs([...args, "debian"], env), /go together; pass both/);
  }
  assert.throws(
    () =>
      parseFetchArgs([
        "--image-credential-provider-config",
        "/c.yaml",
        "--image-credential-provider-bin-dir",
        "/bin",
        "--image-credential-provider-timeout",
        "0s",
        "debian",
      ], env),
    /--image-credential-provider-timeout must be longer than 0s/,
  );
});

Deno.test("--node-label and --remove-startup-taint are checked, with the service account dir", () => {
  const { config } = run([
    "--node-label",
    "image-prefetcher.stackrox.io/my-images",
    "--remove-startup-taint",
    "example.com/prefetching=true:NoSchedule",
    "debian",
  ]);
  assert.deepEqual(config.nodeUpdates, {
    labelKey: "image-prefetcher.stackrox.io/my-images",
    startupTaint: { key: "example.com/prefetching", value: "true", effect: "NoSchedule" },
    serviceAccountDir: "/var/run/secrets/kubernetes.io/serviceaccount",
  });
  assert.throws(
    () => parseFetchArgs(["--node-label", "no spaces please", "debian"], env),
    /--node-label "no spaces please" is not a valid label key/,
  );
  assert.throws(
    () => parseFetchArgs(["--remove-startup-taint", "example.com/prefetching", "debian"], env),
    /--remove-startup-taint "example.com\/prefetching" has no effect/,
  );
});

Deno.test("--waves needs --metrics-endpoint and takes --waves-max-wait", () => {
  const env = { nodeName: "n", hostname: () => "h" };
  const parsed = parseFetchArgs(["--waves", "--metrics-endpoint", "m:8443", "a:1"], env);
  assert.deepEqual(parsed.kind === "run" && parsed.waves, { maxWaitMs: 30_000 });
  const tuned = parseFetchArgs(
    ["--waves", "--metrics-endpoint=m:8443", "--waves-max-wait", "5s", "a:1"],
    env,
  );
  assert.deepEqual(tuned.kind === "run" && tuned.waves, { maxWaitMs: 5_000 });
  assert.throws(() => parseFetchArgs(["--waves", "a:1"], env), /add --metrics-endpoint/);
  assert.throws(
    () => parseFetchArgs(["--waves", "--metrics-endpoint=m:1", "--waves-max-wait=0s"], env),
    /--waves-max-wait must be longer than 0s/,
  );
  assert.throws(() => parseFetchArgs(["--waves-max-wait=5s", "a:1"], env), /add --waves/);
});
