/**
 * The error of a failed CRI call, kept apart from the client so that code which only inspects
 * errors does not load gRPC.
 *
 * @module
 */

/** The parts of a gRPC error that {@linkcode CriError} keeps. */
export interface GrpcFailure {
  /** The gRPC status code. */
  code: number;
  /** The server's description of the failure. */
  details?: string;
  /** The client's message for the failure. */
  message: string;
}

/** A CRI call failed; `code` is the gRPC status code (`grpc.status`). */
export class CriError extends Error {
  /** The gRPC status code of the failure. */
  readonly code: number;
  /** The CRI method that failed, e.g. `PullImage`. */
  readonly method: string;
  /** The runtime's own description of the failure. */
  readonly details: string;

  /** Wraps a gRPC error of a CRI call. */
  constructor(method: string, error: GrpcFailure) {
    // grpc-js appends an empty "Resolution note:" to connection failures; it says nothing.
    const details = (error.details || error.message).replace(/\s*Resolution note:\s*$/, "")
      .replace("Last error: Error: ", "last error: ");
    super(`${method} failed: ${details}`);
    this.name = "CriError";
    this.code = error.code;
    this.method = method;
    this.details = details;
  }
}
