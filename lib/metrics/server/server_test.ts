import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { Logger } from "../../core/log.ts";
import {
  ACCEPTS_IN_PROGRESS,
  ACCEPTS_METADATA_KEY,
  type MetricsResult,
  MetricsService,
  resultToWire,
  SERVER_ID_METADATA_KEY,
} from "../protocol.ts";
import { MetricsServerStartError, startMetricsServer } from "./server.ts";
import { MetricsStore } from "./store.ts";

function sample(extra: Partial<MetricsResult> = {}): MetricsResult {
  return {
    attemptId: crypto.randomUUID(),
    startedAt: 1_700_000_000,
    image: "reg/a:1",
    node: "n1",
    outcome: "pulled",
    attempt: 1,
    durationMs: 1500,
    imagesTotal: 1,
    ...extra,
  };
}

async function start(
  options: {
    token?: string;
    maxMessageBytes?: number;
    hostname?: string;
    hostnames?: string[];
  } = {},
) {
  const lines: string[] = [];
  const store = new MetricsStore();
  const server = await startMetricsServer({
    store,
    logger: new Logger({ write: (line) => lines.push(line), format: "json" }),
    grpcPort: 0,
    httpPort: 0,
    hostname: "127.0.0.1",
    ...options,
  });
  return { store, server, lines };
}

/** Streams raw messages (already encoded, or objects to encode) and returns the final status. */
function stream(
  port: number,
  messages: Array<Uint8Array | MetricsResult>,
  token?: string,
  host = "127.0.0.1",
): Promise<grpc.StatusObject> {
  const client = new grpc.Client(`${host}:${port}`, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  if (token) metadata.set("authorization", `Bearer ${token}`);
  return new Promise((resolve) => {
    const call = client.makeClientStreamRequest(
      "/Metrics/Submit",
      (m: Uint8Array | MetricsResult) =>
        m instanceof Uint8Array
          ? Buffer.from(m)
          : MetricsService.service.Submit.requestSerialize(resultToWire(m)),
      (b: Buffer) => b,
      metadata,
      {},
      () => {},
    );
    call.on("status", (status: grpc.StatusObject) => {
      client.close();
      resolve(status);
    });
    for (const message of messages) call.write(message);
    call.end();
  });
}

Deno.test("results streamed over gRPC are served as JSON, Prometheus text and a summary", async () => {
  const { store, server } = await start();
  await using _ = server;
  const results = [sample(), sample({ node: "n2", outcome: "failed", error: "denied" })];
  const status = await stream(server.grpcPort, [...results, results[0]]);
  assert.equal(status.code, grpc.status.OK);
  assert.equal(status.metadata.get(SERVER_ID_METADATA_KEY)[0], server.serverId);
  assert.equal(status.metadata.get(ACCEPTS_METADATA_KEY)[0], ACCEPTS_IN_PROGRESS);
  assert.equal(store.size, 2, "the re-sent result is kept once");

  const base = `http://127.0.0.1:${server.httpPort}`;
  const json = await (await fetch(`${base}/metrics`)).json();
  assert.deepEqual(json.map((r: { node: string; outcome: string }) => [r.node, r.outcome]), [
    ["n1", "pulled"],
    ["n2", "failed"],
  ]);
  const prometheus = await fetch(`${base}/metrics`, {
    headers: { accept: "text/plain;version=0.0.4;q=0.5,*/*;q=0.1" },
  });
  assert.match(prometheus.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
  assert.match(await prometheus.text(), /image_prefetcher_nodes_reporting 2/);
  const summary = await (await fetch(`${base}/summary`)).json();
  assert.deepEqual([summary.progress.done, summary.progress.failed], [1, 1]);
  const page = await (await fetch(`${base}/`)).text();
  assert.match(page, /<canvas id="grid">/);
  assert.doesNotMatch(page, /<(script|link)[^>]+(src|href)="?https?:/, "no external asset");
  assert.equal((await fetch(`${base}/healthz`)).status, 200);
  const missing = await fetch(`${base}/nope`);
  await missing.body?.cancel();
  assert.equal(missing.status, 404);
});

Deno.test("an empty store serves an empty JSON array", async () => {
  const { server } = await start();
  await using _ = server;
  const body = await (await fetch(`http://127.0.0.1:${server.httpPort}/metrics`)).json();
  assert.deepEqual(body, []);
});

Deno.test("malformed, oversized and invalid messages end their stream, logged once", async () => {
  const { store, server, lines } = await start({ maxMessageBytes: 1024 });
  await using _ = server;
  const kept = sample();
  const undecodable = new Uint8Array([0x0a]); // a length-delimited field with no length
  let status = await stream(server.grpcPort, [kept, undecodable, sample()]);
  assert.equal(status.code, grpc.status.INVALID_ARGUMENT);
  assert.match(status.details, /not a Result/);
  status = await stream(server.grpcPort, [undecodable]);
  assert.equal(status.code, grpc.status.INVALID_ARGUMENT);
  status = await stream(server.grpcPort, [sample({ node: "x".repeat(2000) })]);
  assert.equal(status.code, grpc.status.RESOURCE_EXHAUSTED);
  status = await stream(server.grpcPort, [sample({ attemptId: "" })]);
  assert.equal(status.code, grpc.status.INVALID_ARGUMENT);
  assert.match(status.details, /attempt_id is empty/);
  assert.deepEqual([...store.results()].map((r) => r.attemptId), [kept.attemptId]);
  const warnings = lines.map((l) => JSON.parse(l)).filter((l) => l.level === "warn");
  assert.deepEqual(warnings.map((w) => w.kind), [
    "undecodable",
    "oversized",
    "attempt_id-missing",
  ]);
  // The server still serves everyone else.
  assert.equal((await stream(server.grpcPort, [sample()])).code, grpc.status.OK);
});

Deno.test("with a token, submits and reads need it", async () => {
  const { store, server } = await start({ token: "s3cret" });
  await using _ = server;
  assert.equal((await stream(server.grpcPort, [sample()])).code, grpc.status.UNAUTHENTICATED);
  assert.equal((await stream(server.grpcPort, [sample()], "wrong")).code, 16);
  assert.equal((await stream(server.grpcPort, [sample()], "s3cret")).code, grpc.status.OK);
  assert.equal(store.size, 1);
  const base = `http://127.0.0.1:${server.httpPort}`;
  for (const path of ["/metrics", "/summary", "/"]) {
    const refused = await fetch(base + path);
    await refused.body?.cancel();
    assert.equal(refused.status, 401, path);
    const allowed = await fetch(base + path, { headers: { authorization: "Bearer s3cret" } });
    await allowed.body?.cancel();
    assert.equal(allowed.status, 200, path);
  }
  // Nothing is taken from a query string: a credential there would land in logs and history.
  const page = await fetch(`${base}/?token=s3cret`);
  await page.body?.cancel();
  assert.equal(page.status, 401);
  const health = await fetch(`${base}/healthz`);
  await health.body?.cancel();
  assert.equal(health.status, 200);
});

Deno.test("by default both ports listen dual-stack: over ::1 and over 127.0.0.1", async () => {
  const { store, server } = await start({ hostname: undefined });
  await using _ = server;
  assert.equal(server.hostname, "::");
  for (const host of ["[::1]", "127.0.0.1"]) {
    const status = await stream(
      server.grpcPort,
      [sample({ node: `via ${host}` })],
      undefined,
      host,
    );
    assert.equal(status.code, grpc.status.OK, `gRPC over ${host}`);
    const health = await fetch(`http://${host}:${server.httpPort}/healthz`);
    assert.equal(await health.text(), "ok\n", `HTTP over ${host}`);
  }
  assert.equal(store.nodeCount, 2);
});

Deno.test("an address it cannot listen on is logged and the next one is used", async () => {
  // 192.0.2.1 (TEST-NET-1) is no address of this machine, as :: is none where IPv6 is off.
  const { server, lines } = await start({
    hostname: undefined,
    hostnames: ["192.0.2.1", "0.0.0.0"],
  });
  await using _ = server;
  assert.equal(server.hostname, "0.0.0.0");
  assert.equal((await fetch(`http://127.0.0.1:${server.httpPort}/healthz`)).status, 200);
  assert.match(
    lines.join("\n"),
    /cannot listen on this address; trying the next one.*192\.0\.2\.1/,
  );
});

Deno.test("a long stream is journaled in batches of at most 1,000 results", async () => {
  const appended: number[] = [];
  const store = new MetricsStore();
  await using server = await startMetricsServer({
    store,
    logger: new Logger({ write: () => {} }),
    grpcPort: 0,
    httpPort: 0,
    hostname: "127.0.0.1",
    journal: { append: (results) => void appended.push(results.length) },
  });
  const results = Array.from(
    { length: 2_500 },
    (_, i) => sample({ node: `n${i % 5}`, image: `reg/i${i}:1` }),
  );
  const status = await stream(server.grpcPort, results);
  assert.equal(status.code, grpc.status.OK);
  assert.deepEqual(appended, [1_000, 1_000, 500]);
});

Deno.test("a busy port is no reason to try the next address; the error names its flag", async (t) => {
  const taken = Deno.listen({ hostname: "0.0.0.0", port: 0 });
  const busy = (taken.addr as Deno.NetAddr).port;
  const cases = [
    { name: "HTTP", options: { httpPort: busy }, flag: "--http-port" },
    { name: "gRPC", options: { grpcPort: busy }, flag: "--grpc-port" },
    { name: "local HTTP", options: { localHttpPort: busy }, flag: "--local-http-port" },
  ];
  for (const { name, options, flag } of cases) {
    await t.step(name, async () => {
      const lines: string[] = [];
      const error = await startMetricsServer({
        store: new MetricsStore(),
        logger: new Logger({ write: (line) => lines.push(line), format: "json" }),
        grpcPort: 0,
        httpPort: 0,
        hostnames: ["0.0.0.0", "127.0.0.1"],
        ...options,
      }).then(
        async (server) => {
          await server.shutdown();
          return undefined;
        },
        (error: Error) => error,
      );
      assert.ok(error instanceof MetricsServerStartError, `refused: ${error}`);
      assert.match(error.message, new RegExp(`:${busy} .*choose a free port with ${flag}$`));
      assert.deepEqual(lines, [], "no fallback to another address");
    });
  }
  taken.close();
});
