import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { ACCEPTS_IN_PROGRESS, ACCEPTS_METADATA_KEY, SERVER_ID_METADATA_KEY } from "../protocol.ts";
import { inProgressVerdict, serverIdOf } from "./submit_call.ts";

function status(code: grpc.status, trailers: Record<string, string> = {}): grpc.StatusObject {
  const metadata = new grpc.Metadata();
  for (const [key, value] of Object.entries(trailers)) metadata.set(key, value);
  return { code, details: "", metadata };
}

Deno.test("a server of ours says whether it keeps in-progress results, even when failing", () => {
  const ours = { [SERVER_ID_METADATA_KEY]: "s-1" };
  const keeps = { ...ours, [ACCEPTS_METADATA_KEY]: ACCEPTS_IN_PROGRESS };
  assert.equal(inProgressVerdict(status(grpc.status.OK, keeps)), "accepted");
  assert.equal(inProgressVerdict(status(grpc.status.UNAVAILABLE, keeps)), "accepted");
  assert.equal(inProgressVerdict(status(grpc.status.OK, ours)), "refused");
  assert.equal(serverIdOf(status(grpc.status.OK, ours)), "s-1");
});

Deno.test("an OK without our trailers is the original tool's server; a bare failure says nothing", () => {
  assert.equal(inProgressVerdict(status(grpc.status.OK)), "refused");
  assert.equal(serverIdOf(status(grpc.status.OK)), "");
  assert.equal(inProgressVerdict(status(grpc.status.UNAVAILABLE)), undefined);
});
