/**
 * The Kubernetes {@linkcode ServerAuth} of `aggregate-metrics`: nodes are the node their bound
 * service-account token names (`node_identity.ts`), readers are whoever RBAC lets `get` the path
 * (`reader_access.ts`); both answers are kept in a bounded cache for a minute at most, and never
 * past the token's expiry, so a node costs one TokenReview a minute however often it calls.
 *
 * @module
 */
import {
  bearerToken,
  isRefusal,
  type NodeCaller,
  type Refusal,
  type ServerAuth,
} from "../core/bearer_token.ts";
import { type Clock, systemClock } from "../core/clock.ts";
import type { Logger } from "../core/log.ts";
import {
  identifyNode,
  MismatchLog,
  type NodeIdentity,
  reuseMs,
  serviceAccountUsername,
} from "./node_identity.ts";
import { authorizeRead } from "./reader_access.ts";
import { ReviewCache, tokenKey } from "./review_cache.ts";
import type { ReviewApi } from "./token_review.ts";
import { InvalidInputError } from "../core/exit_codes.ts";
import { inClusterConfig, InClusterConfigError } from "../kube/in_cluster.ts";
import { KubeClient } from "../kube/kube_client.ts";
import { KubeApiError } from "../kube/kube_error.ts";

/** Options for {@linkcode kubernetesAuth}. */
export interface KubernetesAuthOptions {
  /** The Kubernetes API. */
  api: ReviewApi;
  /** The audience of the nodes' projected tokens. */
  audience: string;
  /** The instance's ServiceAccount: the only one whose tokens speak for nodes. */
  serviceAccount: { namespace: string; name: string };
  /** Where refusals worth a line are logged. */
  logger: Logger;
  /**
   * The longest an answer about a valid token is reused, in milliseconds.
   * @default {60_000}
   */
  cacheTtlMs?: number;
  /**
   * How long an answer about a refused token is reused, in milliseconds.
   * @default {10_000}
   */
  refusalTtlMs?: number;
  /**
   * The most answers kept, of each kind (nodes, reads).
   * @default {20_000}
   */
  maxEntries?: number;
  /** @default {systemClock} */
  clock?: Clock;
}

const MISSING: Refusal = {
  refused: "unauthenticated",
  message: "send Authorization: Bearer <token>: a node its projected service-account token, " +
    "a reader a token RBAC lets get the path (or read through kubectl port-forward)",
};

/** Returns the hook; the first answers come from the API, the next from the cache. */
export function kubernetesAuth(options: KubernetesAuthOptions): ServerAuth {
  const clock = options.clock ?? systemClock;
  const ttl = options.cacheTtlMs ?? 60_000;
  const refusalTtl = options.refusalTtlMs ?? 10_000;
  const nodes = new ReviewCache<NodeIdentity | Refusal>({ maxEntries: options.maxEntries, clock });
  const reads = new ReviewCache<Refusal | undefined>({ maxEntries: options.maxEntries, clock });
  const mismatches = new MismatchLog();
  const keep = (token: string, answer: unknown) =>
    isRefusal(answer)
      ? (answer.refused === "unavailable" ? 0 : refusalTtl)
      : reuseMs(token, ttl, clock);

  const caller = (identity: NodeIdentity): NodeCaller => ({
    identity: identity.username,
    nodeFor(claimed) {
      if (claimed === "" || claimed === identity.node) return identity.node;
      const fields = { identity: identity.username, node: identity.node, claimed };
      if (mismatches.firstTime(identity.node, claimed)) {
        options.logger.warn(
          "refused a node speaking for another node (logged once per pair)",
          fields,
        );
      } else options.logger.debug("refused a node speaking for another node", fields);
      return {
        refused: "forbidden",
        message: `this token speaks for node "${identity.node}", not "${claimed}": a node may ` +
          "report and ask only for itself",
      };
    },
  });

  return {
    mode: `kubernetes (nodes: ${serviceAccountUsername(options.serviceAccount)}, audience ` +
      `${options.audience}; reads: RBAC)`,
    async node(authorization) {
      const token = bearerToken(authorization);
      if (!token) return MISSING;
      const identity = await nodes.get(await tokenKey(token), async () => {
        const value = await identifyNode(token, options);
        return { value, ttlMs: keep(token, value) };
      });
      return isRefusal(identity) ? identity : caller(identity);
    },
    async reader(authorization, path) {
      const token = bearerToken(authorization);
      if (!token) return MISSING;
      return await reads.get(await tokenKey(token, path), async () => {
        const value = await authorizeRead(options.api, token, path);
        return { value, ttlMs: keep(token, value) };
      });
    },
  };
}

/** The flags of Kubernetes authentication. */
export interface KubernetesAuthSettings {
  /** The instance's ServiceAccount, `<namespace>/<name>`. */
  serviceAccount: { namespace: string; name: string };
  /** The audience of the nodes' projected tokens. */
  audience: string;
  /** Where the server's own token and CA are. */
  serviceAccountDir: string;
}

/**
 * Connects to the Kubernetes API as the server's own ServiceAccount (from `env`'s
 * `KUBERNETES_SERVICE_*` and the token and CA in `settings.serviceAccountDir`) and returns the
 * hook. Throws {@linkcode InvalidInputError} naming what is missing.
 */
export async function connectKubernetesAuth(
  settings: KubernetesAuthSettings,
  logger: Logger,
  env: Record<string, string | undefined> = Deno.env.toObject(),
): Promise<ServerAuth> {
  let client: KubeClient;
  try {
    client = await KubeClient.create(inClusterConfig(env, settings.serviceAccountDir));
  } catch (error) {
    if (error instanceof InClusterConfigError) {
      throw new InvalidInputError(
        "--node-service-account checks tokens with the Kubernetes API, but " +
          "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set: run aggregate-metrics " +
          "in a pod of the cluster (deploy.ts does), or leave --node-service-account out.",
      );
    }
    if (!(error instanceof KubeApiError)) throw error;
    throw new InvalidInputError(
      `--node-service-account needs the Kubernetes API: ${error.message}`,
    );
  }
  return kubernetesAuth({ ...settings, api: client, logger });
}
