/**
 * The token side of the contract API server: it issues bound service-account tokens (JWT-shaped,
 * with the audiences, expiry and `kubernetes.io` pod and node claims a kubelet's projected token
 * has), and answers TokenReview and SubjectAccessReview as the Kubernetes API does: a token it
 * did not issue, an expired one or one for other audiences is not authenticated; a review without
 * audiences checks the API server's own; the user's extra carries the pod and, on clusters that
 * stamp it (1.30 and later), the node.
 *
 * @module
 */

/** The API server's own audience, what a review without audiences checks. */
export const API_AUDIENCE = "https://kubernetes.default.svc.cluster.local";

/** What a bound token is issued for. */
export interface TokenRequest {
  /** `<namespace>/<name>` of the ServiceAccount. */
  serviceAccount: string;
  /** Audiences. @default {[API_AUDIENCE]} */
  audiences?: string[];
  /** Seconds until it expires; negative for a token that has already expired. @default {3600} */
  expiresInSeconds?: number;
  /** The pod it is bound to, if any. */
  pod?: { name: string; uid: string };
  /** The node the pod runs on, if any. */
  node?: string;
}

interface Issued {
  request: Required<Pick<TokenRequest, "serviceAccount" | "audiences">> & TokenRequest;
  expiresAtMs: number;
}

/** A review's answer, as the API server writes it. */
// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

/** The token half of the API server's state. */
export class TokenAuthority {
  readonly #issued = new Map<string, Issued>();
  /** Paths each user may `get` (RBAC on non-resource URLs). */
  readonly readers = new Map<string, Set<string>>();
  /** Whether reviews put `authentication.kubernetes.io/node-name` in the extra (1.30+). */
  nodeNameExtra = true;
  /** Every TokenReview's spec, in order. */
  readonly tokenReviews: Json[] = [];

  /** Issues a token for `request`. */
  issue(request: TokenRequest): string {
    const audiences = request.audiences ?? [API_AUDIENCE];
    const now = Date.now();
    const expiresAtMs = now + (request.expiresInSeconds ?? 3600) * 1000;
    const [namespace, name] = request.serviceAccount.split("/");
    const payload = {
      aud: audiences,
      exp: Math.floor(expiresAtMs / 1000),
      iat: Math.floor(now / 1000),
      iss: API_AUDIENCE,
      sub: `system:serviceaccount:${namespace}:${name}`,
      "kubernetes.io": {
        namespace,
        serviceaccount: { name, uid: `uid-${name}` },
        ...(request.pod ? { pod: request.pod } : {}),
        ...(request.node ? { node: { name: request.node, uid: `uid-${request.node}` } } : {}),
      },
    };
    const token = [
      base64url(JSON.stringify({ alg: "RS256", kid: "test" })),
      base64url(JSON.stringify(payload)),
      base64url(crypto.randomUUID()),
    ].join(".");
    this.#issued.set(token, { request: { ...request, audiences }, expiresAtMs });
    return token;
  }

  /** Lets `user` get `path`. */
  allowRead(user: string, path: string): void {
    const paths = this.readers.get(user) ?? new Set();
    paths.add(path);
    this.readers.set(user, paths);
  }

  /** The status of a TokenReview of `spec`. */
  tokenReview(spec: Json): Json {
    this.tokenReviews.push(spec);
    const issued = this.#issued.get(String(spec?.token ?? ""));
    if (!issued) return { authenticated: false, error: "invalid bearer token" };
    if (issued.expiresAtMs <= Date.now()) {
      return { authenticated: false, error: "service account token has expired" };
    }
    const wanted: string[] = Array.isArray(spec.audiences) && spec.audiences.length > 0
      ? spec.audiences
      : [API_AUDIENCE];
    const audiences = wanted.filter((a) => issued.request.audiences.includes(a));
    if (audiences.length === 0) {
      return { authenticated: false, error: "token audiences do not match" };
    }
    return { authenticated: true, audiences, user: userOf(issued.request, this.nodeNameExtra) };
  }

  /** The status of a SubjectAccessReview of `spec` (non-resource URLs only). */
  accessReview(spec: Json): Json {
    const attributes = spec?.nonResourceAttributes;
    if (!attributes || typeof spec.user !== "string") {
      return { allowed: false, reason: "the test server answers non-resource reviews only" };
    }
    const allowed = attributes.verb === "get" &&
      (this.readers.get(spec.user)?.has(attributes.path) ?? false);
    return allowed
      ? { allowed: true, reason: "RBAC: allowed by the test grant" }
      : { allowed: false, reason: "" };
  }
}

function userOf(request: TokenRequest, nodeNameExtra: boolean): Json {
  const [namespace, name] = request.serviceAccount.split("/");
  const extra: Record<string, string[]> = {};
  if (request.pod) {
    extra["authentication.kubernetes.io/pod-name"] = [request.pod.name];
    extra["authentication.kubernetes.io/pod-uid"] = [request.pod.uid];
  }
  if (request.node && nodeNameExtra) {
    extra["authentication.kubernetes.io/node-name"] = [request.node];
    extra["authentication.kubernetes.io/node-uid"] = [`uid-${request.node}`];
  }
  return {
    username: `system:serviceaccount:${namespace}:${name}`,
    uid: `uid-${name}`,
    groups: [
      "system:serviceaccounts",
      `system:serviceaccounts:${namespace}`,
      "system:authenticated",
    ],
    extra,
  };
}

function base64url(text: string): string {
  return btoa(String.fromCharCode(...new TextEncoder().encode(text)))
    .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
