/**
 * Whether a bearer token may read a path of the server, decided by Kubernetes RBAC the way
 * kube-rbac-proxy and controller-runtime's metrics filter decide it: the token is reviewed
 * (TokenReview, for the API server's own audience), then its user is checked by a
 * SubjectAccessReview for `get` on the non-resource URL of the path, so a ClusterRole rule
 * `{nonResourceURLs: ["/metrics"], verbs: ["get"]}` is what lets Prometheus scrape.
 *
 * @module
 */
import { isRefusal, type Refusal } from "../core/bearer_token.ts";
import { apiUnavailable, type ReviewApi, reviewToken } from "./token_review.ts";

/** The `status` of a SubjectAccessReview. */
interface AccessStatus {
  allowed?: boolean;
  denied?: boolean;
  reason?: string;
}

/** Reviews `token`, then asks whether its user may `get` `path`; `undefined` when allowed. */
export async function authorizeRead(
  api: ReviewApi,
  token: string,
  path: string,
): Promise<Refusal | undefined> {
  const user = await reviewToken(api, token, undefined);
  if (isRefusal(user)) return user;
  let status: AccessStatus | undefined;
  try {
    status = (await api.createReview<AccessStatus>("SubjectAccessReview", {
      user: user.username,
      uid: user.uid,
      groups: user.groups,
      extra: user.extra,
      nonResourceAttributes: { path, verb: "get" },
    }, AbortSignal.timeout(5_000))).status;
  } catch (error) {
    return apiUnavailable(error);
  }
  if (status?.allowed) return undefined;
  return {
    refused: "forbidden",
    message:
      `${user.username} may not get ${path}${status?.reason ? ` (${status.reason})` : ""}; ` +
      `grant it a ClusterRole rule {nonResourceURLs: ["${path}"], verbs: ["get"]}, or read ` +
      "through kubectl port-forward",
  };
}
