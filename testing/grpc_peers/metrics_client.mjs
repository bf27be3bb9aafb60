// A Node.js @grpc/grpc-js client of `aggregate-metrics` that speaks only the original tool's
// protocol: `/Metrics/Submit` with `Result` fields 1-7 (see proto/metrics.proto), encoded here by
// hand so that nothing of ours is on this side of the wire. It runs one scenario and prints one
// JSON line: {"acknowledged": [attempt ids the server acknowledged], "cancelled": [...]}.
//
// Usage: node metrics_client.mjs <host:port> <node> <scenario> [count] [perStream]
//   one-call          one stream with one result, then close() (a graceful GOAWAY)
//   many-streams N K  N results in streams of K on one connection, then close()
//   cancel            one stream with one result, cancelled before it ends, then close()
//   churn N           N connections, one stream of one result each, each closed after its call
import * as grpc from "@grpc/grpc-js";
import { randomUUID } from "node:crypto";

const [target, node, scenario, countText = "1", perStreamText = "1"] = process
  .argv.slice(2);
const count = Number(countText);
const perStream = Number(perStreamText);

function varint(value) {
  const bytes = [];
  let v = BigInt(value);
  while (v > 127n) {
    bytes.push(Number(v & 127n) | 128);
    v >>= 7n;
  }
  bytes.push(Number(v));
  return bytes;
}

function field(number, wireType, payload) {
  return [...varint((number << 3) | wireType), ...payload];
}

function text(number, value) {
  const bytes = [...Buffer.from(value, "utf8")];
  return field(number, 2, [...varint(bytes.length), ...bytes]);
}

/** Encodes a `Result` with the original's seven fields only. */
function encodeResult(result) {
  return Buffer.from([
    ...text(1, result.attempt_id),
    ...field(2, 0, varint(result.started_at)),
    ...text(3, result.image),
    ...(result.error ? text(4, result.error) : []),
    ...field(5, 0, varint(result.duration_ms)),
    ...text(6, result.node),
    ...field(7, 0, varint(result.size_bytes)),
  ]);
}

function newResult(index) {
  return {
    attempt_id: randomUUID(),
    started_at: Math.floor(Date.now() / 1000),
    image: `registry.example/peer/image-${index}:v1`,
    error: index % 5 === 4 ? "an error the original client reported" : "",
    duration_ms: 100 + index,
    node,
    size_bytes: 1000 + index,
  };
}

/** Opens one Submit stream, writes `results`, and ends it (or cancels it when `cancel`). */
function submit(client, results, cancel = false) {
  return new Promise((resolve) => {
    const call = client.makeClientStreamRequest(
      "/Metrics/Submit",
      (value) => value,
      (buffer) => buffer,
      new grpc.Metadata(),
      {},
      () => {},
    );
    call.on("status", (status) => resolve(status.code));
    for (const result of results) call.write(encodeResult(result));
    if (cancel) setTimeout(() => call.cancel(), 50);
    else call.end();
  });
}

// A local subchannel pool: each client has a connection of its own (churn means new connections).
const newClient = () =>
  new grpc.Client(target, grpc.credentials.createInsecure(), {
    "grpc.use_local_subchannel_pool": 1,
  });
const acknowledged = [];
const cancelled = [];

async function streams(client, total, size, first = 0) {
  for (let sent = 0; sent < total; sent += size) {
    const batch = Array.from(
      { length: Math.min(size, total - sent) },
      (_, i) => newResult(first + sent + i),
    );
    const code = await submit(client, batch);
    if (code !== grpc.status.OK) {
      throw new Error(`a stream ended with status ${code}`);
    }
    acknowledged.push(...batch.map((r) => r.attempt_id));
  }
}

switch (scenario) {
  case "one-call":
  case "many-streams": {
    const client = newClient();
    await streams(client, scenario === "one-call" ? 1 : count, perStream);
    client.close();
    break;
  }
  case "cancel": {
    const client = newClient();
    const batch = [newResult(0)];
    const code = await submit(client, batch, true);
    if (code === grpc.status.OK) acknowledged.push(batch[0].attempt_id);
    else cancelled.push(batch[0].attempt_id);
    client.close();
    break;
  }
  case "churn": {
    for (let i = 0; i < count; i++) {
      const client = newClient();
      // One image per connection: the server keeps at most 8 attempts of one image per node and run.
      await streams(client, 1, 1, i);
      client.close();
    }
    break;
  }
  default:
    console.error(
      `unknown scenario ${scenario}; use one-call, many-streams, cancel or churn`,
    );
    process.exit(2);
}
// Give the GOAWAY frames time to leave before the process ends.
await new Promise((resolve) => setTimeout(resolve, 200));
console.log(JSON.stringify({ acknowledged, cancelled }));
