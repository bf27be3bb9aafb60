// A Node.js @grpc/grpc-js pass-through in front of a container runtime's socket: it serves the
// CRI and containerd content calls `fetch` makes on a UNIX socket of its own and forwards each,
// bytes and metadata unchanged, to the runtime. It can stop gracefully (grpc-js tryShutdown: a
// GOAWAY to every connection, calls in flight finish) and come back on the same socket, the way a
// runtime on grpc-go's GracefulStop does.
//
// Usage: node cri_passthrough.mjs <listen socket> <runtime socket>
// Commands, one per line on standard input; each answers with one JSON line on standard output:
//   bounce <downMs>       stop gracefully now, wait for the calls in flight, stay away downMs,
//                         listen again -> {"event":"back","goaway":true,"inFlight":n,...}
//                         (inFlight: calls in flight at the GOAWAY; goawayAt: when, in ms since
//                         the epoch; drainedMs: how long the calls in flight took to finish)
//   bounce-idle <downMs>  the same, once no call is in flight (a connection that is idle when
//                         its GOAWAY arrives is torn down at once by the receiving side)
//   stats                 -> {"event":"stats","calls":{method: count},"inFlight":n}
// It prints {"event":"listening"} once it first listens.
import * as grpc from "@grpc/grpc-js";
import { createInterface } from "node:readline";

const [listenSocket, runtimeSocket] = process.argv.slice(2);

const UNARY = [
  "/runtime.v1.RuntimeService/Version",
  "/runtime.v1.ImageService/ImageStatus",
  "/runtime.v1.ImageService/PullImage",
  "/runtime.v1.ImageService/RemoveImage",
  "/runtime.v1.ImageService/ListImages",
  "/containerd.services.content.v1.Content/Info",
  "/containerd.services.content.v1.Content/ListStatuses",
];
const SERVER_STREAMING = [
  "/containerd.services.content.v1.Content/List",
  "/containerd.services.content.v1.Content/Read",
];

const same = (value) => value;
const upstream = new grpc.Client(
  `unix:${runtimeSocket}`,
  grpc.credentials.createInsecure(),
);
const calls = {};
const inFlightBy = {};
let inFlight = 0;
const idleWaiters = [];

function track(method) {
  calls[method] = (calls[method] ?? 0) + 1;
  inFlightBy[method] = (inFlightBy[method] ?? 0) + 1;
  inFlight++;
  let done = false;
  return () => {
    if (done) return;
    done = true;
    inFlight--;
    inFlightBy[method]--;
    if (inFlight === 0) { for (const wake of idleWaiters.splice(0)) wake(); }
  };
}

function unary(method) {
  return (call, callback) => {
    const finish = track(method);
    const forwarded = upstream.makeUnaryRequest(
      method,
      same,
      same,
      call.request,
      call.metadata,
      { deadline: call.getDeadline() },
      (error, response) => {
        finish();
        callback(error, response);
      },
    );
    call.on("cancelled", () => {
      finish();
      forwarded.cancel();
    });
  };
}

function serverStreaming(method) {
  return (call) => {
    const finish = track(method);
    const forwarded = upstream.makeServerStreamRequest(
      method,
      same,
      same,
      call.request,
      call.metadata,
      { deadline: call.getDeadline() },
    );
    forwarded.on("data", (message) => call.write(message));
    forwarded.on("error", (error) => {
      finish();
      call.destroy(error);
    });
    forwarded.on("end", () => {
      finish();
      call.end();
    });
    call.on("cancelled", () => {
      finish();
      forwarded.cancel();
    });
  };
}

function newServer() {
  const server = new grpc.Server();
  for (const method of UNARY) {
    server.register(method, unary(method), same, same, "unary");
  }
  for (const method of SERVER_STREAMING) {
    server.register(
      method,
      serverStreaming(method),
      same,
      same,
      "serverStream",
    );
  }
  return server;
}

function listen() {
  const server = newServer();
  return new Promise((resolve, reject) => {
    server.bindAsync(
      `unix:${listenSocket}`,
      grpc.ServerCredentials.createInsecure(),
      (error) => {
        if (error) reject(error);
        else resolve(server);
      },
    );
  });
}

const say = (event) => process.stdout.write(JSON.stringify(event) + "\n");
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let server = await listen();
say({ event: "listening" });

async function bounce(downMs, whenIdle) {
  if (whenIdle && inFlight > 0) {
    await new Promise((resolve) => idleWaiters.push(resolve));
  }
  const before = inFlight;
  const goawayAt = Date.now();
  // tryShutdown stops listening at once and sends every connection a GOAWAY; its callback comes
  // once the calls in flight have finished.
  await new Promise((resolve) => server.tryShutdown(() => resolve()));
  const drainedMs = Date.now() - goawayAt;
  await sleep(downMs);
  server = await listen();
  say({ event: "back", goaway: true, inFlight: before, goawayAt, drainedMs });
}

let queue = Promise.resolve();
createInterface({ input: process.stdin }).on("line", (line) => {
  const [command, arg] = line.trim().split(/\s+/);
  queue = queue.then(async () => {
    if (command === "bounce" || command === "bounce-idle") {
      await bounce(Number(arg ?? 1000), command === "bounce-idle");
    } else if (command === "stats") {
      say({ event: "stats", calls, inFlight, inFlightBy });
    } else {
      say({ event: "error", error: `unknown command ${command}` });
    }
  });
}).on("close", () => {
  queue.then(() => server.forceShutdown()).then(() => process.exit(0));
});
