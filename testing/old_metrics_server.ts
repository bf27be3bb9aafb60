/**
 * A metrics server of ours from before `in-progress` results, as a program of its own: it refuses
 * their outcome as unknown and says nothing of them in its trailers, unless started with
 * `claims` (a server that says it keeps them but refuses them anyway). It prints `listening`,
 * then one line per stored attempt (`stored <attempt_id> <outcome>`) and per refused snapshot
 * (`snapshot`).
 *
 * It runs in a process of its own so that no HTTP/2 GOAWAY passes between it and the test's
 * client inside one Deno process (denoland/deno#36788 aborts such a process).
 *
 * Run: deno run -A testing/old_metrics_server.ts <port> [claims]
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import { MetricsService, SERVER_ID_METADATA_KEY } from "../lib/metrics/protocol.ts";

if (import.meta.main) {
  const [port, claims] = [Number(Deno.args[0]), Deno.args[1] === "claims"];
  const server = new grpc.Server();
  server.addService(MetricsService.service, {
    Submit: (
      call: grpc.ServerReadableStream<Record<string, unknown>, unknown>,
      callback: grpc.sendUnaryData<unknown>,
    ) => {
      const trailer = new grpc.Metadata();
      trailer.set(SERVER_ID_METADATA_KEY, "old-server");
      if (claims) trailer.set("x-metrics-accepts", "in-progress");
      let done = false;
      call.on("data", (message) => {
        if (done) return;
        if (message.outcome === "OUTCOME_IN_PROGRESS") {
          console.log("snapshot");
          done = true;
          callback({
            code: grpc.status.INVALID_ARGUMENT,
            details: `result ${message.attempt_id} has an unknown outcome 5`,
            metadata: trailer,
          } as grpc.ServiceError, null);
          return;
        }
        console.log(`stored ${message.attempt_id} ${message.outcome}`);
      });
      call.on("end", () => {
        if (!done) callback(null, {}, trailer);
      });
    },
  });
  server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (error) => {
    if (error) throw error;
    console.log("listening");
  });
}
