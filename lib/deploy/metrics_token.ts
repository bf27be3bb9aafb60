/**
 * The bearer token the prefetch pods and the metrics server share, and how their pods mount it.
 *
 * @module
 */
import {
  dirname,
  type Instance,
  type Json,
  type KubernetesObject,
  metadata,
  TOKEN_FILE,
  tokenName,
} from "./instance.ts";

/**
 * The bearer token the nodes and the metrics server share: a Secret of type
 * `kubernetes.io/service-account-token`, which Kubernetes fills with a fresh token, so the
 * manifest holds no secret and applying it again keeps the token. Its ServiceAccount is bound to
 * no role and mounted nowhere; the token only proves to the server that a caller can read the
 * Secret, which the instance's pods can and other pods cannot.
 */
export function tokenObjects(o: Instance): KubernetesObject[] {
  return [
    {
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: metadata(o, tokenName(o), "metrics"),
      automountServiceAccountToken: false,
    },
    {
      apiVersion: "v1",
      kind: "Secret",
      metadata: {
        ...metadata(o, tokenName(o), "metrics"),
        annotations: { "kubernetes.io/service-account.name": tokenName(o) },
      },
      type: "kubernetes.io/service-account-token",
    },
  ];
}

/** The volume of the token Secret, for the pods that send or check it. */
export function tokenVolume(o: Instance): Json {
  return {
    name: "token",
    secret: {
      secretName: tokenName(o),
      items: [{ key: "token", path: "token" }],
      defaultMode: 0o444,
    },
  };
}

/** Where a container finds the token: the directory of `TOKEN_FILE`. */
export function tokenMount(): Json {
  return { name: "token", mountPath: dirname(TOKEN_FILE), readOnly: true };
}
