/**
 * One TokenReview (`authentication.k8s.io/v1`): asks the Kubernetes API who a bearer token
 * belongs to, for which audiences, and reads the answer into a value.
 *
 * @module
 */
import { KubeApiError } from "../kube/kube_error.ts";
import type { KubePod } from "../kube/kube_client.ts";
import type { Refusal } from "../core/bearer_token.ts";

/** The calls the server makes to the Kubernetes API (a `KubeClient`, or a fake in unit tests). */
export interface ReviewApi {
  /** Creates a TokenReview or SubjectAccessReview and returns the API's answer. */
  createReview<T>(
    kind: "TokenReview" | "SubjectAccessReview",
    spec: unknown,
    signal?: AbortSignal,
  ): Promise<{ status?: T }>;
  /** Reads a pod. */
  getPod(namespace: string, name: string, signal?: AbortSignal): Promise<KubePod>;
}

/** Who the API says a token belongs to. */
export interface ReviewedUser {
  /** `system:serviceaccount:<namespace>:<name>` for a ServiceAccount. */
  username: string;
  /** Its UID. */
  uid?: string;
  /** Its groups. */
  groups?: string[];
  /** Its extra attributes, like `authentication.kubernetes.io/node-name`. */
  extra?: Record<string, string[]>;
}

/** The `status` of a TokenReview. */
interface TokenReviewStatus {
  authenticated?: boolean;
  user?: ReviewedUser;
  audiences?: string[];
  error?: string;
}

/** How long one API call may take. */
export const REVIEW_TIMEOUT_MS = 5_000;

/**
 * Reviews `token` (for `audience`, or the API server's own when absent) and returns its user, or
 * a refusal: `unauthenticated` when the API does not accept it, `unavailable` when the API could
 * not be asked.
 */
export async function reviewToken(
  api: ReviewApi,
  token: string,
  audience: string | undefined,
): Promise<ReviewedUser | Refusal> {
  let status: TokenReviewStatus | undefined;
  try {
    const spec = { token, ...(audience === undefined ? {} : { audiences: [audience] }) };
    status = (await api.createReview<TokenReviewStatus>(
      "TokenReview",
      spec,
      AbortSignal.timeout(REVIEW_TIMEOUT_MS),
    )).status;
  } catch (error) {
    return apiUnavailable(error);
  }
  const wanted = audience === undefined ? "" : ` for the audience "${audience}"`;
  if (!status?.authenticated || !status.user?.username) {
    return {
      refused: "unauthenticated",
      message: `the Kubernetes API does not accept this token${wanted}` +
        `${status?.error ? ` (${status.error})` : ""}; send a current service-account token` +
        `${wanted}`,
    };
  }
  if (audience !== undefined && status.audiences && !status.audiences.includes(audience)) {
    return {
      refused: "unauthenticated",
      message: `this token is for ${status.audiences.join(", ")}, not ${audience}; send the ` +
        `projected token of audience "${audience}"`,
    };
  }
  return status.user;
}

/** The refusal for a failed API call: the check could not be made, try again. */
export function apiUnavailable(error: unknown): Refusal {
  const detail = error instanceof KubeApiError || error instanceof Error
    ? error.message
    : String(error);
  return {
    refused: "unavailable",
    message: `the server could not check the token with the Kubernetes API (${detail}); ` +
      "try again",
  };
}
