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

/**
 * How a registry refused a pull in a way that retrying as is cannot fix:
 * - `not-found`: it does not have the image (or the reference is invalid);
 * - `unauthorized`: it refused the credentials (401) or their access to the image (403).
 */
export type PullRefusal = "not-found" | "unauthorized";

/** gRPC status codes a runtime answers an unknown or invalid image with (containerd). */
const NOT_FOUND_CODES = new Set([/* NOT_FOUND */ 5, /* INVALID_ARGUMENT */ 3]);

/**
 * The wording of "the registry does not have it": containerd answers with gRPC NOT_FOUND, CRI-O
 * with UNKNOWN and containers/image's words: the distribution error codes `MANIFEST_UNKNOWN` and
 * `NAME_UNKNOWN`, by their default messages or their names.
 */
const NOT_FOUND_WORDS =
  /\b(manifest unknown|name unknown|repository name not known to registry)\b/i;

/**
 * The wording of "the registry refused the credentials". containerd 1.6 quotes the status
 * (`401 Unauthorized`, `403 Forbidden`), 1.7 and later say `pull access denied` or the token
 * server's `insufficient_scope`. CRI-O passes containers/image's words: `unable to retrieve auth
 * token: invalid username/password` from a token server, and the distribution error codes
 * `UNAUTHORIZED` and `DENIED`, by their default messages (`authentication required`, `requested
 * access to the resource is denied`) or as `unauthorized: …` and `denied: …` with the registry's
 * own message (ECR: `denied: Your authorization token has expired`).
 */
const UNAUTHORIZED_WORDS = new RegExp(
  [
    String.raw`\b401 Unauthorized\b`,
    String.raw`\b403 Forbidden\b`,
    String.raw`\bpull access denied\b`,
    String.raw`\binsufficient_scope\b`,
    String.raw`\binvalid username/password\b`,
    String.raw`\bauthentication required\b`,
    String.raw`\brequested access to the resource is denied\b`,
    String.raw`(^|: )(unauthorized|denied): `,
  ].join("|"),
  "i",
);

/**
 * A NOT_FOUND that comes from the node's own stores, not from the registry: containerd answers
 * it when an unpack finds a parent snapshot or a blob gone (garbage-collected between a cut
 * attempt and its retry, say). Retrying can fix it.
 */
const LOCAL_STORE_WORDS =
  /\bfailed to (prepare extraction snapshot|extract layer|unpack image on snapshotter)\b/i;

/**
 * Tells whether a failed pull was refused in a way retrying as is cannot fix, and how; undefined
 * for network failures, stalls, server errors and everything else worth retrying.
 *
 * @example
 * ```ts
 * import { CriError, pullRefusal } from "./cri_error.ts";
 *
 * const crio = new CriError("PullImage", {
 *   code: 2,
 *   message: "",
 *   details: "initializing source docker://r.example/app:v9: reading manifest v9 in " +
 *     "r.example/app: manifest unknown",
 * });
 * console.assert(pullRefusal(crio) === "not-found");
 * ```
 */
export function pullRefusal(error: unknown): PullRefusal | undefined {
  if (!(error instanceof CriError)) return undefined;
  if (LOCAL_STORE_WORDS.test(error.details)) return undefined;
  if (NOT_FOUND_CODES.has(error.code) || NOT_FOUND_WORDS.test(error.details)) return "not-found";
  if (UNAUTHORIZED_WORDS.test(error.details)) return "unauthorized";
  return undefined;
}
