/**
 * The command line as users meet it: subcommands, help, version, bad invocations. Runs the real
 * program; none of these need a container runtime.
 */
import assert from "node:assert/strict";
import denoConfig from "../deno.json" with { type: "json" };
import { PERMISSION_FLAGS, runProgram } from "../testing/prefetcher_process.ts";

Deno.test("the run task uses exactly the permissions the compiled binary gets", () => {
  const runFlags = denoConfig.tasks.prefetcher.split(/\s+/).filter((w) => w.startsWith("--allow-"));
  assert.ok(PERMISSION_FLAGS.length > 0);
  assert.deepEqual(runFlags, [...PERMISSION_FLAGS]);
});

Deno.test("--version prints the version of deno.json", async () => {
  const run = await runProgram(["--version"]);
  assert.equal(run.code, 0);
  assert.equal(run.stdout.trim(), denoConfig.version);
});

Deno.test("each subcommand has --help", async () => {
  for (const command of ["fetch", "sleep"]) {
    const run = await runProgram([command, "--help"]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, new RegExp(`Usage: image-prefetcher ${command}`));
  }
  const fetchHelp = (await runProgram(["fetch", "--help"])).stdout;
  for (
    const flag of [
      "--cri-socket path",
      "--image-list-file",
      "--docker-config",
      "--metrics-endpoint",
      "--image-list-timeout",
      "--initial-pull-attempt-timeout",
      "--max-pull-attempt-timeout",
      "--overall-timeout",
      "--initial-pull-attempt-delay",
      "--max-pull-attempt-delay",
      "--max-parallel",
      "--pull-policy",
      "--node-name",
      "--log-format",
      "--strict",
      "--debug",
    ]
  ) {
    assert.ok(fetchHelp.includes(flag), `fetch --help does not mention ${flag}`);
  }
  assert.match(fetchHelp, /Exit status:/);
});

Deno.test("an unknown command or flag is one sentence and exit 2, no stack trace", async () => {
  for (
    const [args, pattern] of [
      [["pull"], /unknown command "pull"/],
      [["fetch", "--no-such-flag"], /Unknown option '--no-such-flag'.*fetch --help/],
      [["fetch", "--overall-timeout", "20"], /--overall-timeout: .*"20"/],
      [["fetch", "--max-parallel", "-1", "x"], /--max-parallel/],
      [["fetch", "--pull-policy", "Never", "x"], /--pull-policy must be Always or IfNotPresent/],
      [["fetch"], /No images to pull/],
      [
        ["fetch", "--metrics-endpoint", "m:8443", "--metrics-token-file", "/nonexistent/t", "x"],
        /Cannot read --metrics-token-file \/nonexistent\/t .*readable file/,
      ],
      [
        [
          "aggregate-metrics",
          "--grpc-port",
          "0",
          "--http-port",
          "0",
          "--token-file",
          "/nonexistent/t",
        ],
        /Cannot read --token-file \/nonexistent\/t .*readable file/,
      ],
      [["aggregate-metrics", "--fanout", "3"], /--fanout tunes waves: add --waves/],
      [
        [
          "aggregate-metrics",
          "--grpc-port",
          "0",
          "--http-port",
          "0",
          "--node-service-account",
          "p/s",
        ],
        /--node-service-account checks tokens with the Kubernetes API, but KUBERNETES_SERVICE_HOST/,
      ],
    ] as const
  ) {
    const run = await runProgram([...args]);
    assert.equal(run.code, 2, `${args.join(" ")}: ${run.stderr}`);
    assert.match(run.stderr, pattern);
    assert.doesNotMatch(run.stderr, /\n\s+at /, "no stack trace");
  }
});

Deno.test("a missing image list file is named, after waiting --image-list-timeout", async () => {
  const run = await runProgram([
    "fetch",
    "--image-list-file",
    "/nonexistent/images.txt",
    "--image-list-timeout",
    "300ms",
  ]);
  assert.equal(run.code, 2);
  assert.match(run.stderr, /The image list file \/nonexistent\/images.txt does not exist/);
});

Deno.test("a malformed docker config is named with the fix, before any pull", async () => {
  const config = await Deno.makeTempFile({ suffix: ".json" });
  try {
    await Deno.writeTextFile(config, "{not json");
    const run = await runProgram(["fetch", "--docker-config", config, "--cri-socket", "/x", "a:1"]);
    assert.equal(run.code, 2);
    assert.ok(run.stderr.includes(config), run.stderr);
    assert.match(run.stderr, /not valid JSON/);
  } finally {
    await Deno.remove(config);
  }
});

Deno.test("an unreachable runtime socket exits 3 naming the socket and the fix", async () => {
  const run = await runProgram([
    "fetch",
    "--cri-socket",
    "/nonexistent/containerd.sock",
    "--cri-connect-timeout",
    "1s",
    "a:1",
  ]);
  assert.equal(run.code, 3, run.stderr);
  assert.match(run.stderr, /does not answer on \/nonexistent\/containerd.sock/);
  assert.match(run.stderr, /--cri-socket/);
});

Deno.test("sleep exits 0 promptly on SIGTERM", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...PERMISSION_FLAGS, new URL("../main.ts", import.meta.url).pathname, "sleep"],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  // Wait for the listener to be installed: the process has loaded once it sleeps.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const sent = performance.now();
  child.kill("SIGTERM");
  const status = await child.status;
  await child.stderr.cancel();
  assert.equal(status.code, 0);
  assert.ok(performance.now() - sent < 2_000, "sleep took more than 2 s to stop");
});
