/**
 * One `Submit` call of the metrics submitter: opening it, and reading the server's answer (its
 * identity, and whether it keeps `in-progress` results) from the trailers of its status.
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import { currentToken, type TokenSource } from "../../core/token_file.ts";
import {
  ACCEPTS_IN_PROGRESS,
  ACCEPTS_METADATA_KEY,
  MetricsService,
  SERVER_ID_METADATA_KEY,
} from "../protocol.ts";

/** A client-streaming `Submit` call of one batch. */
export interface SubmitCall {
  /** Where the batch's results are written. */
  call: grpc.ClientWritableStream<unknown>;
  /** The call's status: the server's answer, or why the call failed. */
  status: Promise<grpc.StatusObject>;
  /** The status has come (the call may end before the batch does). */
  ended: boolean;
}

/** Options for {@linkcode openSubmitCall}. */
export interface SubmitCallOptions {
  /** Sent as `Authorization: Bearer <token>` when set (a function is asked on every call). */
  token?: TokenSource;
  /** When the call is given up, in milliseconds since the epoch. */
  deadline: number;
}

/**
 * Opens a `Submit` call on a `MetricsService` client; `ended` turns true once its status came.
 *
 * @example
 * ```ts
 * import * as grpc from "@grpc/grpc-js";
 * import { MetricsService } from "../protocol.ts";
 * import { openSubmitCall } from "./submit_call.ts";
 *
 * // Sends an empty batch and says whether the server answered OK.
 * async function ping(endpoint: string): Promise<boolean> {
 *   const client = new MetricsService(endpoint, grpc.credentials.createInsecure());
 *   const open = openSubmitCall(client, { deadline: Date.now() + 5_000 });
 *   open.call.end();
 *   const status = await open.status;
 *   client.close();
 *   return status.code === grpc.status.OK;
 * }
 * ```
 */
export function openSubmitCall(client: grpc.Client, options: SubmitCallOptions): SubmitCall {
  const metadata = new grpc.Metadata();
  const token = currentToken(options.token);
  if (token) metadata.set("authorization", `Bearer ${token}`);
  let call!: grpc.ClientWritableStream<unknown>;
  const status = new Promise<grpc.StatusObject>((resolve) => {
    call = client.makeClientStreamRequest(
      "/Metrics/Submit",
      (value: unknown) => MetricsService.service.Submit.requestSerialize(value),
      (buffer: Buffer) => MetricsService.service.Submit.responseDeserialize(buffer),
      metadata,
      { deadline: options.deadline },
      () => {},
    );
    call.on("status", resolve);
  });
  const open: SubmitCall = { call, status, ended: false };
  status.then(() => open.ended = true);
  return open;
}

/** The identity of the server that answered OK ("" when it did not say: not one of ours). */
export function serverIdOf(status: grpc.StatusObject): string {
  return String(status.metadata.get(SERVER_ID_METADATA_KEY)[0] ?? "");
}

/**
 * What an answer says of `in-progress` results: a server of ours says whether it keeps them (a
 * failure too carries its trailers); an OK without our trailers is the original tool's server,
 * which does not; any other answer says nothing (`undefined`).
 */
export function inProgressVerdict(status: grpc.StatusObject): "accepted" | "refused" | undefined {
  if (status.metadata?.get(SERVER_ID_METADATA_KEY).length) {
    const accepts = status.metadata.get(ACCEPTS_METADATA_KEY).map(String);
    return accepts.includes(ACCEPTS_IN_PROGRESS) ? "accepted" : "refused";
  }
  if (status.code === grpc.status.OK) return "refused";
  return undefined;
}
