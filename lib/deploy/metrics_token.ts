/**
 * How the prefetch pods prove who they are to the metrics server, with no long-lived credential
 * anywhere: each init container gets a projected service-account token for the instance's own
 * audience, which expires after 10 minutes and which the kubelet rewrites before then; the server
 * checks it with the Kubernetes API (TokenReview) as its own ServiceAccount, which may create
 * TokenReviews and SubjectAccessReviews (to authorize readers) and read the instance's pods (to
 * find a token's node on clusters older than 1.30), and nothing else.
 *
 * @module
 */
import {
  dirname,
  type Instance,
  type Json,
  type KubernetesObject,
  metadata,
  metricsName,
  TOKEN_FILE,
} from "./instance.ts";

/** How long a node's projected token lives (the least Kubernetes allows). */
export const NODE_TOKEN_SECONDS = 600;

/** The audience of the nodes' tokens: the instance's own, so no other service accepts them. */
export function tokenAudience(o: Instance): string {
  return `image-prefetcher:${o.namespace}:${o.name}`;
}

/** The projected token volume of the prefetch pods, for the metrics server only. */
export function tokenVolume(o: Instance): Json {
  return {
    name: "token",
    projected: {
      defaultMode: 0o444,
      sources: [{
        serviceAccountToken: {
          audience: tokenAudience(o),
          expirationSeconds: NODE_TOKEN_SECONDS,
          path: "token",
        },
      }],
    },
  };
}

/** Where a container finds the token: the directory of `TOKEN_FILE`. */
export function tokenMount(): Json {
  return { name: "token", mountPath: dirname(TOKEN_FILE), readOnly: true };
}

/** The metrics server's `aggregate-metrics` flags that check the nodes' and readers' tokens. */
export function tokenCheckArgs(o: Instance): string[] {
  return [
    "--node-service-account",
    `${o.namespace}/${o.name}`,
    "--token-audience",
    tokenAudience(o),
  ];
}

/**
 * The metrics server's ServiceAccount and what it may do: create TokenReviews and
 * SubjectAccessReviews (cluster-wide, as these APIs are), and get the pods of its namespace.
 */
export function tokenObjects(o: Instance): KubernetesObject[] {
  const name = metricsName(o);
  const roleName = `image-prefetcher:${o.namespace}:${name}`;
  const { namespace: _, ...clusterMetadata } = metadata(o, roleName, "metrics");
  const subjects = [{ kind: "ServiceAccount", name, namespace: o.namespace }];
  return [
    {
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: metadata(o, name, "metrics"),
      automountServiceAccountToken: false,
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: clusterMetadata,
      rules: [
        { apiGroups: ["authentication.k8s.io"], resources: ["tokenreviews"], verbs: ["create"] },
        {
          apiGroups: ["authorization.k8s.io"],
          resources: ["subjectaccessreviews"],
          verbs: ["create"],
        },
      ],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: clusterMetadata,
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: roleName },
      subjects,
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: metadata(o, name, "metrics"),
      // Only for clusters whose tokens do not name their node (before 1.30).
      rules: [{ apiGroups: [""], resources: ["pods"], verbs: ["get"] }],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: metadata(o, name, "metrics"),
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name },
      subjects,
    },
  ];
}
