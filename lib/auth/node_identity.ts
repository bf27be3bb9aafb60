/**
 * Which node a caller is: the node its bound service-account token names. The token is reviewed
 * by the Kubernetes API (TokenReview, for the instance's audience), must belong to the instance's
 * ServiceAccount, and its node is the `authentication.kubernetes.io/node-name` the API puts in
 * the user's extra (Kubernetes 1.30 and later, on by default; GA in 1.32). On older clusters the
 * node is looked up: the pod the token is bound to (its `pod-name` extra, or the token's own
 * claim), read from the API (`get pods` in the instance's namespace), its UID compared with the
 * token's, and its `spec.nodeName` taken.
 *
 * @module
 */
import type { Refusal } from "../core/bearer_token.ts";
import { isRefusal } from "../core/bearer_token.ts";
import type { Clock } from "../core/clock.ts";
import { KubeApiError } from "../kube/kube_error.ts";
import { tokenClaims } from "./jwt_claims.ts";
import { apiUnavailable, type ReviewApi, type ReviewedUser, reviewToken } from "./token_review.ts";

/** The user extra key of the node a bound token's pod runs on. */
export const NODE_NAME_EXTRA = "authentication.kubernetes.io/node-name";
/** The user extra key of the pod a bound token belongs to. */
export const POD_NAME_EXTRA = "authentication.kubernetes.io/pod-name";
/** The user extra key of that pod's UID. */
export const POD_UID_EXTRA = "authentication.kubernetes.io/pod-uid";

/** An authenticated node. */
export interface NodeIdentity {
  /** The token's username. */
  username: string;
  /** The node it runs on. */
  node: string;
}

/** What {@linkcode identifyNode} needs. */
export interface NodeIdentityOptions {
  /** The Kubernetes API. */
  api: ReviewApi;
  /** The audience the nodes' projected tokens are for. */
  audience: string;
  /** The instance's ServiceAccount, the only one whose tokens speak for nodes. */
  serviceAccount: { namespace: string; name: string };
}

/** The username of a ServiceAccount. */
export function serviceAccountUsername(account: { namespace: string; name: string }): string {
  return `system:serviceaccount:${account.namespace}:${account.name}`;
}

/** Reviews `token` and returns the node it speaks for, or a refusal. */
export async function identifyNode(
  token: string,
  options: NodeIdentityOptions,
): Promise<NodeIdentity | Refusal> {
  const user = await reviewToken(options.api, token, options.audience);
  if (isRefusal(user)) return user;
  const expected = serviceAccountUsername(options.serviceAccount);
  if (user.username !== expected) {
    return {
      refused: "forbidden",
      message: `the token of ${user.username} does not speak for nodes; only ${expected}'s does`,
    };
  }
  const node = user.extra?.[NODE_NAME_EXTRA]?.[0];
  if (node) return { username: user.username, node };
  return await nodeOfPod(token, user, options);
}

/** The node of the pod the token is bound to, for clusters that do not name the node. */
async function nodeOfPod(
  token: string,
  user: ReviewedUser,
  options: NodeIdentityOptions,
): Promise<NodeIdentity | Refusal> {
  const claims = tokenClaims(token);
  const podName = user.extra?.[POD_NAME_EXTRA]?.[0] ?? claims.pod?.name;
  const podUid = user.extra?.[POD_UID_EXTRA]?.[0] ?? claims.pod?.uid;
  if (!podName) {
    return {
      refused: "forbidden",
      message: "this token is bound to no pod, so it names no node; mount a projected " +
        "service-account token (deploy.ts does)",
    };
  }
  const { namespace } = options.serviceAccount;
  try {
    const pod = await options.api.getPod(namespace, podName, AbortSignal.timeout(5_000));
    if (podUid && pod.metadata.uid && pod.metadata.uid !== podUid) throw podGone(podName);
    const node = pod.spec?.nodeName;
    if (!node) throw podGone(podName);
    return { username: user.username, node };
  } catch (error) {
    if (isRefusal(error)) return error;
    if (error instanceof KubeApiError && error.status === 404) return podGone(podName);
    return apiUnavailable(error);
  }
}

function podGone(pod: string): Refusal {
  return {
    refused: "unauthenticated",
    message: `the pod ${pod} this token is bound to is gone or not on a node; send the token ` +
      "of a running pod",
  };
}

/**
 * Logs a node that claims another node once per (node, claimed node): a misconfiguration or an
 * attack is worth one line, not one a second. Remembers at most `max` pairs.
 */
export class MismatchLog {
  readonly #seen = new Set<string>();
  readonly #max: number;

  /** Creates the log; past `max` pairs, mismatches are only counted at debug level. */
  constructor(max = 10_000) {
    this.#max = max;
  }

  /** Whether the pair is new (and so worth a warning); remembers it. */
  firstTime(node: string, claimed: string): boolean {
    const key = `${node}\0${claimed}`;
    if (this.#seen.has(key) || this.#seen.size >= this.#max) return false;
    this.#seen.add(key);
    return true;
  }
}

/**
 * How long an answer is reused: `ttlMs`, and never past the token's expiry (a time of day, so
 * read against the wall clock; the reuse itself is then timed on the monotonic one).
 */
export function reuseMs(token: string, ttlMs: number, clock: Clock): number {
  const expiresAtMs = tokenClaims(token).expiresAtMs;
  if (expiresAtMs === undefined) return ttlMs;
  return Math.max(0, Math.min(ttlMs, expiresAtMs - clock.wallNow()));
}
