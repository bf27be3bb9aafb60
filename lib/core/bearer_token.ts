/**
 * Who may call a server, as one hook every handler asks: the gRPC services (metrics submits,
 * waves admissions) ask {@linkcode ServerAuth.node} who a node is and which node it may speak
 * for; the HTTP routes ask {@linkcode ServerAuth.reader} whether a request may read a path.
 *
 * Three implementations: {@linkcode openAuth} (no credential, for a laptop or a test),
 * {@linkcode sharedTokenAuth} (one shared secret, outside Kubernetes: every holder may speak for
 * any node) and, in `lib/auth/`, the Kubernetes one (TokenReview and SubjectAccessReview: a node
 * is the node its bound token names).
 *
 * @module
 */
import { timingSafeEqual } from "node:crypto";

/** Why a call was refused: what the caller is told, and how. */
export interface Refusal {
  /**
   * `unauthenticated`: no credential, or one that is not valid; `forbidden`: a valid credential
   * that may not do this; `unavailable`: the check itself could not be made (try again).
   */
  readonly refused: "unauthenticated" | "forbidden" | "unavailable";
  /** One sentence for the caller, saying what is wrong and what to do. */
  readonly message: string;
}

/** A caller of a node's gRPC service that the server has authenticated. */
export interface NodeCaller {
  /** Who its credential says it is, for logs (a ServiceAccount's username, say). */
  readonly identity: string;
  /**
   * The node to record for a message whose `node` field says `claimed`: the credential's node,
   * or a refusal (logged once per identity and claimed node) when the message claims another.
   * An empty `claimed` is the credential's node. Without a node in the credential (a shared
   * token, no credential at all), the message is trusted.
   */
  nodeFor(claimed: string): string | Refusal;
}

/** The one authentication and authorization hook of a server. */
export interface ServerAuth {
  /** What is checked, for the start-up log line: `none`, `shared token`, `kubernetes`. */
  readonly mode: string;
  /** Authenticates a node from its `authorization` metadata value. */
  node(authorization: string | undefined): Promise<NodeCaller | Refusal>;
  /**
   * Authorizes a read of `path` from the request's `Authorization` header value; `undefined`
   * when allowed. Nothing in the query string is ever looked at.
   */
  reader(authorization: string | undefined, path: string): Promise<Refusal | undefined>;
}

/** Whether `value` is a refusal rather than a caller or a node name. */
export function isRefusal(value: unknown): value is Refusal {
  return typeof value === "object" && value !== null && "refused" in value;
}

/** The gRPC status code of a refusal: UNAUTHENTICATED (16), PERMISSION_DENIED (7), UNAVAILABLE (14). */
export function grpcStatusOf(refusal: Refusal): number {
  return refusal.refused === "unauthenticated" ? 16 : refusal.refused === "forbidden" ? 7 : 14;
}

/** The HTTP answer of a refusal: 401 (with `WWW-Authenticate: Bearer`), 403 or 503. */
export function httpRefusal(refusal: Refusal): Response {
  const status = refusal.refused === "unauthenticated"
    ? 401
    : refusal.refused === "forbidden"
    ? 403
    : 503;
  return new Response(`${refusal.message}\n`, {
    status,
    headers: {
      "cache-control": "no-store",
      ...(status === 401 ? { "www-authenticate": "Bearer" } : {}),
    },
  });
}

/** A caller whose messages are trusted to name their node. */
function trustingCaller(identity: string): NodeCaller {
  return { identity, nodeFor: (claimed) => claimed };
}

/**
 * Lets every caller in, trusting each message's node: for a server on a laptop or in a test.
 *
 * @example
 * ```ts
 * import { openAuth } from "./bearer_token.ts";
 *
 * const auth = openAuth();
 * await auth.reader(undefined, "/metrics"); // undefined: allowed
 * ```
 */
export function openAuth(): ServerAuth {
  return {
    mode: "none",
    node: () => Promise.resolve(trustingCaller("anyone")),
    reader: () => Promise.resolve(undefined),
  };
}

/**
 * Lets in the holders of one shared token (`Authorization: Bearer <token>`), compared in constant
 * time. Weaker than Kubernetes authentication: every holder may speak for any node, and the token
 * never expires. Meant for servers outside Kubernetes.
 *
 * @example
 * ```ts
 * import { sharedTokenAuth } from "./bearer_token.ts";
 *
 * const auth = sharedTokenAuth("s3cret");
 * await auth.reader("Bearer s3cret", "/metrics"); // undefined: allowed
 * await auth.reader("Bearer guess", "/metrics"); // a refusal
 * ```
 */
export function sharedTokenAuth(token: string): ServerAuth {
  const expected = new TextEncoder().encode(token);
  const matches = (authorization: string | undefined) => {
    const presented = bearerToken(authorization);
    if (!presented) return false;
    const bytes = new TextEncoder().encode(presented);
    return bytes.length === expected.length && timingSafeEqual(bytes, expected);
  };
  const refusal: Refusal = {
    refused: "unauthenticated",
    message: "this server needs the bearer token of its --token-file: send " +
      "Authorization: Bearer <token>",
  };
  return {
    mode: "shared token",
    node: (authorization) =>
      Promise.resolve(matches(authorization) ? trustingCaller("shared token") : refusal),
    reader: (authorization) => Promise.resolve(matches(authorization) ? undefined : refusal),
  };
}

/** The token of an `Authorization: Bearer <token>` header value, if it has one. */
export function bearerToken(header: string | null | undefined): string | undefined {
  const match = header?.match(/^Bearer\s+(\S+)\s*$/i);
  return match?.[1];
}

/** The `authorization` value of a gRPC call's metadata, if it has one. */
export function authorizationOf(
  metadata: { get(key: string): unknown[] },
): string | undefined {
  const value = metadata.get("authorization")[0];
  return value === undefined ? undefined : String(value);
}
