import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { Logger } from "../../core/log.ts";
import { startMetricsServer } from "../../metrics/server/server.ts";
import { MetricsStore } from "../../metrics/server/store.ts";
import { WaveCoordinator } from "../coordinator.ts";
import { WavesClient, WavesRefusedError } from "../client/waves_client.ts";
import { retryAfterMs, wavesEndpoint } from "./admit_handler.ts";
import { admitRequest } from "../../../testing/admit_request.ts";

const APP = "registry.example/app:1";

async function start(token?: string) {
  const lines: string[] = [];
  const logger = new Logger({ write: (line) => lines.push(line), format: "json" });
  const waves = wavesEndpoint({ coordinator: new WaveCoordinator(), logger, token });
  const server = await startMetricsServer({
    store: new MetricsStore(),
    logger,
    grpcPort: 0,
    httpPort: 0,
    hostname: "127.0.0.1",
    token,
    waves,
  });
  return { server, waves, lines };
}

const never = new AbortController().signal;

Deno.test("/Waves/Admit on the metrics port: decisions, and the picture in /summary", async () => {
  const { server, waves } = await start();
  await using _ = server;
  using client = new WavesClient({ endpoint: `127.0.0.1:${server.grpcPort}` });
  const first = await client.admit(admitRequest("a", { want: [APP] }), never);
  assert.deepEqual(first.decisions, [{ pull: true, first_wave: true, wait_reason: "" }]);
  assert.equal(first.server_id, waves.serverId);
  assert.equal(first.retry_after_ms, 1_000);
  const second = await client.admit(admitRequest("b", { want: [APP] }), never);
  assert.deepEqual(second.decisions, [{
    pull: false,
    first_wave: false,
    wait_reason: "first-wave",
  }]);
  await client.admit(admitRequest("a", { pulled: [APP] }), never);
  const summary = await (await fetch(`http://127.0.0.1:${server.httpPort}/summary`)).json();
  assert.deepEqual(summary.waves.images, [
    { image: APP, registry: "registry.example", have: 1, pulling: 0, waiting: 1 },
  ]);
});

Deno.test("an admission without the token is refused, and logged once", async () => {
  const { server, lines } = await start("s3cret");
  await using _ = server;
  const endpoint = `127.0.0.1:${server.grpcPort}`;
  for (const token of [undefined, "wrong"]) {
    using stranger = new WavesClient({ endpoint, token });
    const refused = await stranger.admit(admitRequest("a", { want: [APP] }), never).catch((e) => e);
    assert.ok(refused instanceof WavesRefusedError);
    assert.equal(refused.code, grpc.status.UNAUTHENTICATED);
  }
  using node = new WavesClient({ endpoint, token: "s3cret" });
  const answer = await node.admit(admitRequest("a", { want: [APP] }), never);
  assert.equal(answer.decisions[0].pull, true);
  const warnings = lines.map((l) => JSON.parse(l)).filter((l) => l.level === "warn");
  assert.equal(warnings.length, 1);
  assert.match(warnings[0].msg, /refused an admission/);
});

Deno.test("a server without waves answers UNIMPLEMENTED, which the client calls a refusal", async () => {
  const server = await startMetricsServer({
    store: new MetricsStore(),
    logger: new Logger({ write: () => {} }),
    grpcPort: 0,
    httpPort: 0,
    hostname: "127.0.0.1",
  });
  await using _ = server;
  using client = new WavesClient({ endpoint: `127.0.0.1:${server.grpcPort}` });
  const refused = await client.admit(admitRequest("a", { want: [APP] }), never).catch((e) => e);
  assert.ok(refused instanceof WavesRefusedError);
  assert.match(refused.message, /start aggregate-metrics with --waves/);
  const summary = await (await fetch(`http://127.0.0.1:${server.httpPort}/summary`)).json();
  assert.equal(summary.waves, undefined);
});

Deno.test("retryAfterMs grows with the number of nodes, and with the decisions they would ask", () => {
  const byNodes = [1, 1_999, 2_000, 5_000].map((nodes) => retryAfterMs(nodes));
  assert.deepEqual(byNodes, [1_000, 1_000, 2_000, 3_000]);
  assert.equal(retryAfterMs(1_000, 50), 1_000, "50,000 decisions a second is fine");
  assert.equal(retryAfterMs(2_000, 250), 5_000, "500,000 would be too many");
  assert.equal(retryAfterMs(5_000, 1_000), 10_000, "at most 10 s");
});

Deno.test("a request past a bound is refused whole, with a sentence and the gRPC code", async () => {
  const { server } = await start();
  await using _ = server;
  using client = new WavesClient({ endpoint: `127.0.0.1:${server.grpcPort}` });
  const names = Array.from({ length: 1_001 }, (_, i) => `registry.example/x${i}:1`);
  await assert.rejects(
    client.admit(admitRequest("a", { want: names }), never),
    (error: WavesRefusedError) =>
      error.code === grpc.status.INVALID_ARGUMENT &&
      /AdmitRequest\.want lists 1001 images; send at most 1000/.test(error.message),
  );
  await assert.rejects(
    client.admit(admitRequest("a", { pulled: ["x".repeat(2_000)] }), never),
    (error: WavesRefusedError) => /image name of 2000 characters/.test(error.message),
  );
  // An old node's request (no `released`, no `permanent`) is still answered.
  const old = await client.admit(
    admitRequest("a", { want: [APP], failed: [{ image: "r.example/y:1", rate_limited: false }] }),
    never,
  );
  assert.equal(old.decisions[0].pull, true);
});

Deno.test("past the images it may know, the coordinator answers RESOURCE_EXHAUSTED", async () => {
  const lines: string[] = [];
  const logger = new Logger({ write: (line) => lines.push(line), format: "json" });
  const coordinator = new WaveCoordinator({ limits: { maxImages: 2 } });
  const waves = wavesEndpoint({ coordinator, logger });
  const server = await startMetricsServer({
    store: new MetricsStore(),
    logger,
    grpcPort: 0,
    httpPort: 0,
    hostname: "127.0.0.1",
    waves,
  });
  await using _ = server;
  using client = new WavesClient({ endpoint: `127.0.0.1:${server.grpcPort}` });
  const three = ["r.example/a:1", "r.example/b:1", "r.example/c:1"];
  await assert.rejects(
    client.admit(admitRequest("a", { want: three }), never),
    (error: grpc.ServiceError) =>
      error.code === grpc.status.RESOURCE_EXHAUSTED && /past its limit of 2/.test(error.details),
  );
  assert.equal(coordinator.images, 0, "nothing of the refused request was applied");
});
