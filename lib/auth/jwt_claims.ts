/**
 * The claims of a Kubernetes service-account token (a JWT) that the server reads once the
 * Kubernetes API has said the token is valid (TokenReview): when it expires, and the pod and node
 * it is bound to. The signature is not checked here: only the API server can, and does.
 *
 * @module
 */

/** What a bound service-account token says about itself. */
export interface TokenClaims {
  /** When it expires, in milliseconds since the epoch, if it says. */
  expiresAtMs?: number;
  /** The pod it is bound to, if any. */
  pod?: { name: string; uid?: string };
  /** The node its pod runs on (Kubernetes 1.30 and later), if it says. */
  node?: string;
}

/**
 * Reads the claims of `token`; an empty object for a token that is not a JWT.
 *
 * @example
 * ```ts
 * import { tokenClaims } from "./jwt_claims.ts";
 *
 * const payload = btoa(JSON.stringify({ exp: 1_800_000_000 })).replace(/=+$/, "");
 * tokenClaims(`e30.${payload}.sig`).expiresAtMs; // 1_800_000_000_000
 * ```
 */
export function tokenClaims(token: string): TokenClaims {
  const parts = token.split(".");
  if (parts.length !== 3) return {};
  let payload: Record<string, unknown>;
  try {
    const base64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    payload = JSON.parse(new TextDecoder().decode(
      Uint8Array.from(
        atob(base64.padEnd(Math.ceil(base64.length / 4) * 4, "=")),
        (c) => c.charCodeAt(0),
      ),
    ));
  } catch {
    return {};
  }
  if (typeof payload !== "object" || payload === null) return {};
  const claims: TokenClaims = {};
  if (typeof payload.exp === "number") claims.expiresAtMs = payload.exp * 1000;
  const kube = payload["kubernetes.io"] as Record<string, { name?: unknown; uid?: unknown }>;
  const pod = kube?.pod;
  if (typeof pod?.name === "string") {
    claims.pod = { name: pod.name, ...(typeof pod.uid === "string" ? { uid: pod.uid } : {}) };
  }
  if (typeof kube?.node?.name === "string") claims.node = kube.node.name;
  return claims;
}
