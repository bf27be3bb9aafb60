/**
 * `--overall-timeout` and SIGTERM bound a whole `fetch` run, end to end: the real program against
 * a real containerd and registry, stopped at each point it can wait (the image list, the runtime,
 * a pull, the metrics' last delivery, the node's label), and against peers that accept a
 * connection and never answer (a metrics server, the Kubernetes API). Bounds are generous: they
 * tell a prompt exit from one that waited out a timeout of 10 s or more.
 */
import assert from "node:assert/strict";
import { CriClient } from "../lib/runtime/cri_client.ts";
import { startApiFixture, testNode } from "../testing/kube/api_fixture.ts";
import {
  jsonFetchArgs,
  type ProgramRun,
  type RunningProgram,
  spawnProgram,
} from "../testing/prefetcher_process.ts";
import { type Stack, startStack } from "../testing/stack/stack.ts";
import { waitUntil } from "../testing/stack/wait_until.ts";

/** Well under the waits a stop must not sit out (10 s flushes, 30 s node updates, 1 m waits). */
const PROMPT_MS = 5_000;

function describe(run: ProgramRun): string {
  return `exit ${run.code}\nstdout:\n${run.stdout}\nstderr:\n${run.stderr}`;
}

/** A TCP listener that accepts connections and never answers: a peer that hangs. */
function blackHole(): { host: string; connected: () => number } & Disposable {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  (async () => {
    for await (const conn of listener) held.push(conn);
  })().catch(() => {});
  return {
    host: `127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    connected: () => held.length,
    [Symbol.dispose]: () => {
      listener.close();
      for (const conn of held) conn.close();
    },
  };
}

/** Sends SIGTERM and returns the run with how long it took to end. */
async function stop(program: RunningProgram): Promise<{ run: ProgramRun; stopMs: number }> {
  const at = performance.now();
  program.process.kill("SIGTERM");
  const run = await program.finished;
  return { run, stopMs: performance.now() - at };
}

/** Runs `fetch` to its end and returns the run with how long it took. */
async function timed(program: RunningProgram): Promise<{ run: ProgramRun; ms: number }> {
  const at = performance.now();
  const run = await program.finished;
  return { run, ms: performance.now() - at };
}

Deno.test("SIGTERM and --overall-timeout end fetch promptly from any point", async (t) => {
  await using stack = await startStack();
  const image = await stack.pushImage({ repository: "bounds/app", tag: "v1" });
  const onNode = image.reference(stack.registry.host);
  {
    using cri = new CriClient(stack.containerd.socket);
    await cri.pullImage(onNode);
  }
  const fetchArgs = (s: Stack, ...args: string[]) =>
    jsonFetchArgs(s.containerd.socket, "--node-name", "node-a", ...args);

  await t.step("SIGTERM while waiting for the image list", async () => {
    const list = `${await Deno.makeTempDir()}/not-yet.txt`;
    const program = spawnProgram(
      fetchArgs(stack, "--image-list-file", list, "--image-list-timeout", "1m"),
    );
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const { run, stopMs } = await stop(program);
    assert.equal(run.code, 143, describe(run));
    assert.ok(run.events.some((e) => e.msg === "stopped before pulling"), describe(run));
    assert.ok(stopMs < PROMPT_MS, `took ${stopMs.toFixed(0)} ms to stop`);
  });

  await t.step("SIGTERM while waiting for the runtime", async () => {
    const socket = `${await Deno.makeTempDir()}/absent.sock`;
    const program = spawnProgram(
      jsonFetchArgs(socket, "--cri-connect-timeout", "1m", onNode),
    );
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    const { run, stopMs } = await stop(program);
    assert.equal(run.code, 143, describe(run));
    assert.ok(run.events.some((e) => e.msg === "waiting for the container runtime"));
    assert.ok(run.events.some((e) => e.msg === "stopped before pulling"), describe(run));
    assert.ok(stopMs < PROMPT_MS, `took ${stopMs.toFixed(0)} ms to stop`);
  });

  await t.step("--overall-timeout bounds the waits for the list and the runtime", async () => {
    const list = `${await Deno.makeTempDir()}/never.txt`;
    const listRun = await timed(spawnProgram(fetchArgs(
      stack,
      ...["--image-list-file", list, "--image-list-timeout", "1m", "--overall-timeout", "2s"],
    )));
    assert.equal(listRun.run.code, 2, describe(listRun.run));
    assert.match(listRun.run.stderr, /does not exist \(waited 2s\)/);
    assert.ok(listRun.ms < PROMPT_MS + 2_000, `took ${listRun.ms.toFixed(0)} ms`);

    const socket = `${await Deno.makeTempDir()}/absent.sock`;
    const runtimeRun = await timed(spawnProgram(jsonFetchArgs(
      socket,
      ...["--cri-connect-timeout", "1m", "--overall-timeout", "2s", onNode],
    )));
    assert.equal(runtimeRun.run.code, 3, describe(runtimeRun.run));
    assert.ok(runtimeRun.ms < PROMPT_MS + 2_000, `took ${runtimeRun.ms.toFixed(0)} ms`);
  });

  await t.step("SIGTERM while a pull hangs", async () => {
    const stalled = await stack.pushImage({ repository: "bounds/stalled", tag: "v1" });
    stack.proxy.setFaults({ stall: {} });
    try {
      const program = spawnProgram(fetchArgs(stack, stalled.reference(stack.proxy.host)));
      assert.ok(
        await waitUntil(() =>
          stack.proxy.requests.some((r) => r.path.includes("/bounds/stalled/blobs/"))
        ),
        "a blob request of the stalled image",
      );
      const { run, stopMs } = await stop(program);
      assert.equal(run.code, 143, describe(run));
      assert.equal(run.summary?.images[0].failure, "interrupted");
      assert.ok(stopMs < PROMPT_MS, `took ${stopMs.toFixed(0)} ms to stop`);
    } finally {
      stack.proxy.setFaults({});
    }
  });

  await t.step(
    "SIGTERM, or --overall-timeout, while the metrics server never answers",
    async () => {
      using metrics = blackHole();
      const args = (...more: string[]) =>
        fetchArgs(stack, "--metrics-endpoint", metrics.host, ...more, onNode);
      const program = spawnProgram(args());
      assert.ok(
        await waitUntil(() => metrics.connected() > 0),
        "a connection to the metrics server",
      );
      await new Promise((resolve) => setTimeout(resolve, 500));
      const { run, stopMs } = await stop(program);
      assert.equal(run.code, 143, describe(run));
      assert.ok(run.summary, "the summary is printed first");
      assert.ok(stopMs < PROMPT_MS, `took ${stopMs.toFixed(0)} ms to stop, not the 10 s flush`);

      const bounded = await timed(spawnProgram(args("--overall-timeout", "2s")));
      assert.equal(bounded.run.code, 0, describe(bounded.run));
      assert.equal(bounded.run.summary?.metrics?.undelivered, 1, describe(bounded.run));
      assert.ok(bounded.ms < PROMPT_MS + 2_000, `took ${bounded.ms.toFixed(0)} ms, not 2 s + 10 s`);
    },
  );

  await t.step(
    "SIGTERM, or --overall-timeout, while the Kubernetes API never answers",
    async () => {
      await using api = await startApiFixture({ nodes: [testNode("node-a")] });
      using hole = blackHole();
      const [host, port] = hole.host.split(":");
      const env = { KUBERNETES_SERVICE_HOST: host, KUBERNETES_SERVICE_PORT: port };
      const args = (...more: string[]) =>
        fetchArgs(
          stack,
          ...["--node-label", "example.com/images", "--service-account-dir", api.serviceAccountDir],
          ...more,
          onNode,
        );
      const program = spawnProgram(args(), { env });
      assert.ok(await waitUntil(() => hole.connected() > 0), "a connection to the Kubernetes API");
      await new Promise((resolve) => setTimeout(resolve, 500));
      const { run, stopMs } = await stop(program);
      assert.equal(run.code, 143, describe(run));
      assert.ok(stopMs < PROMPT_MS, `took ${stopMs.toFixed(0)} ms to stop, not a 10 s request`);

      const bounded = await timed(spawnProgram(args("--overall-timeout", "2s"), { env }));
      assert.equal(bounded.run.code, 0, describe(bounded.run));
      assert.ok(bounded.run.events.some((e) => e.msg === "could not label the node"));
      assert.ok(bounded.ms < PROMPT_MS + 2_000, `took ${bounded.ms.toFixed(0)} ms`);
    },
  );
});
