/**
 * One unary call to a containerd service on the CRI socket (content, images): the namespace in
 * the metadata, a deadline, cancellation by signal, and the service's own error for a failure.
 * Private to `lib/runtime/`.
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import { installHttp2GoawayMitigation } from "../core/http2_goaway_mitigation.ts";

// Every module that speaks gRPC installs it before a session can exist (denoland/deno#36788).
installHttp2GoawayMitigation();

/** A call to one of containerd's services failed; `code` is the gRPC status code. */
export class ContainerdServiceError extends Error {
  /** The gRPC status code of the failure. */
  readonly code: number;
  /** The method that failed, e.g. `ListStatuses`. */
  readonly method: string;

  /**
   * Wraps a failed call of `method` of containerd's `service` on `socket`; `advice` (a sentence)
   * follows the cause.
   */
  constructor(
    service: string,
    method: string,
    socket: string,
    error: { code: number; details?: string },
    advice = "",
  ) {
    // grpc-js appends an empty "Resolution note:" to connection failures; it says nothing.
    const details = (error.details ?? "").replace(/\s*Resolution note:\s*$/, "") ||
      `gRPC status ${error.code}`;
    super(`containerd ${service} service ${method} on ${socket} failed: ${details}${advice}`);
    this.code = error.code;
    this.method = method;
  }
}

type Callback = (error: grpc.ServiceError | null, response: unknown) => void;

/** A unary method of a grpc-js client, as the generated client exposes it. */
type UnaryMethod = (
  request: unknown,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: Callback,
) => grpc.ClientUnaryCall;

/** The metadata every containerd call carries: the namespace the CRI plugin uses. */
export function namespaceMetadata(namespace: string): grpc.Metadata {
  const metadata = new grpc.Metadata();
  metadata.set("containerd-namespace", namespace);
  return metadata;
}

/** How to make one call. */
export interface ContainerdCall {
  /** The containerd namespace, e.g. `k8s.io`. */
  namespace: string;
  /** When the call is given up, in milliseconds since the epoch. */
  deadline: number;
  /** Cancels the call; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** The error to reject with when the service answers with a gRPC error. */
  error: (error: grpc.ServiceError) => Error;
}

/** Calls `method` of `client` with `request` and resolves with the response. */
export function containerdUnary<T>(
  client: grpc.Client,
  method: string,
  request: unknown,
  call: ContainerdCall,
): Promise<T> {
  const { signal } = call;
  return new Promise<T>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => pending.cancel();
    const fn = (client as unknown as Record<string, UnaryMethod>)[method].bind(client);
    const metadata = namespaceMetadata(call.namespace);
    const pending = fn(request, metadata, { deadline: call.deadline }, (error, response) => {
      signal?.removeEventListener("abort", onAbort);
      if (signal?.aborted) reject(signal.reason);
      else if (error) reject(call.error(error));
      else resolve(response as T);
    });
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
