/**
 * The objects of the metrics server of an instance: the `aggregate-metrics` Deployment, its
 * Service and the NetworkPolicy in front of its gRPC port.
 *
 * @module
 */
import {
  imagePullSecrets,
  type Instance,
  type Json,
  type KubernetesObject,
  labels,
  metadata,
  METRICS_GRPC_PORT,
  METRICS_HTTP_PORT,
  METRICS_STATE_DIR,
  metricsName,
} from "./instance.ts";
import { nonRoot, OCP_RESTRICTED_SCC } from "./security_contexts.ts";
import { tokenCheckArgs } from "./metrics_token.ts";
import { serviceAccountTokenVolume } from "./node_updates.ts";

/** The loopback-only port of the views, reached with `kubectl port-forward`. */
export const METRICS_LOCAL_HTTP_PORT = 8081;

/** The metrics Service: its gRPC port for the nodes, its HTTP port for reads. */
export function metricsService(o: Instance): KubernetesObject {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: metadata(o, metricsName(o), "metrics"),
    spec: {
      type: o.metricsServiceType,
      selector: labels(o, "metrics"),
      ports: [
        {
          name: "grpc",
          port: METRICS_GRPC_PORT,
          targetPort: "grpc",
          protocol: "TCP",
          appProtocol: "kubernetes.io/h2c",
        },
        {
          name: "http",
          port: METRICS_HTTP_PORT,
          targetPort: "http",
          protocol: "TCP",
          appProtocol: "http",
        },
      ],
    },
  };
}

/** The metrics Deployment: one `aggregate-metrics` pod, replaced, never doubled. */
export function metricsDeployment(o: Instance): KubernetesObject {
  const selector = labels(o, "metrics");
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: metadata(o, metricsName(o), "metrics"),
    spec: {
      replicas: 1,
      // One in-memory aggregator: never two at once, or the attempts would be split.
      strategy: { type: "Recreate" },
      selector: { matchLabels: selector },
      template: {
        metadata: {
          labels: selector,
          ...(o.flavor === "ocp"
            ? { annotations: { "openshift.io/required-scc": OCP_RESTRICTED_SCC } }
            : {}),
        },
        spec: {
          serviceAccountName: metricsName(o),
          // Its token is mounted explicitly, into the one container that calls the API.
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          securityContext: { seccompProfile: { type: "RuntimeDefault" } },
          nodeSelector: { "kubernetes.io/os": "linux" },
          ...imagePullSecrets(o),
          containers: [aggregateMetricsContainer(o)],
          volumes: [
            { name: "state", emptyDir: { sizeLimit: "1Gi" } },
            serviceAccountTokenVolume().volume,
          ],
        },
      },
    },
  };
}

/** The `aggregate-metrics` container: receives the attempts on gRPC, serves `/metrics`. */
function aggregateMetricsContainer(o: Instance): Json {
  return {
    name: "aggregate-metrics",
    image: o.image,
    args: [
      "aggregate-metrics",
      "--grpc-port",
      String(METRICS_GRPC_PORT),
      "--http-port",
      String(METRICS_HTTP_PORT),
      "--state-file",
      `${METRICS_STATE_DIR}/attempts.ndjson`,
      "--local-http-port",
      String(METRICS_LOCAL_HTTP_PORT),
      ...tokenCheckArgs(o),
      ...wavesArgs(o),
    ],
    // The attempts outlive a crash of the container: the pod's emptyDir is kept.
    volumeMounts: [
      { name: "state", mountPath: METRICS_STATE_DIR },
      serviceAccountTokenVolume().mount,
    ],
    ports: [
      { name: "grpc", containerPort: METRICS_GRPC_PORT, protocol: "TCP" },
      { name: "http", containerPort: METRICS_HTTP_PORT, protocol: "TCP" },
    ],
    readinessProbe: { tcpSocket: { port: "grpc" }, periodSeconds: 5 },
    // About 600 B per attempt kept (bench/aggregator.ts: 390 MiB for 5,000 nodes x 100
    // images); the limit leaves room for that and for serving /metrics.
    resources: {
      requests: { cpu: "20m", memory: "96Mi" },
      limits: { cpu: "1", memory: "1Gi" },
    },
    securityContext: nonRoot(o),
  };
}

/** The `--waves` flags of `aggregate-metrics`, if the instance has waves. */
function wavesArgs(o: Instance): string[] {
  if (!o.waves) return [];
  return [
    "--waves",
    "--first-wave",
    String(o.waves.firstWave),
    "--fanout",
    String(o.waves.fanout),
    "--max-nodes-pulling",
    String(o.waves.maxNodesPulling),
  ];
}

/**
 * Only the instance's prefetch pods reach the metrics server's gRPC port (submits and, with
 * waves, admissions); its HTTP port (reads, each checked by RBAC; /healthz) stays open. Not
 * emitted when the prefetch pods use the host's network (`--credential-provider gke|eks|aks`):
 * their traffic comes from node addresses, which no pod selector matches and which the manifest
 * cannot know, so the policy would drop every submit; every call is authenticated by its token
 * instead (see the README's Security model).
 */
export function metricsNetworkPolicy(o: Instance): KubernetesObject[] {
  if (o.credentialProvider?.hostNetwork) return [];
  return [metricsPodsOnly(o)];
}

function metricsPodsOnly(o: Instance): KubernetesObject {
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: metadata(o, metricsName(o), "metrics"),
    spec: {
      podSelector: { matchLabels: labels(o, "metrics") },
      policyTypes: ["Ingress"],
      ingress: [
        {
          from: [{ podSelector: { matchLabels: labels(o, "prefetch") } }],
          ports: [{ protocol: "TCP", port: METRICS_GRPC_PORT }],
        },
        { ports: [{ protocol: "TCP", port: METRICS_HTTP_PORT }] },
      ],
    },
  };
}
