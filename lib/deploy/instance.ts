/**
 * The resolved instance, and what all its Kubernetes objects share: names, labels, the paths
 * inside its containers and the ports of the metrics server.
 *
 * @module
 */
import type { FetchTuning } from "./fetch_tuning.ts";
import type { CredentialProviderPodParts } from "./credential_provider.ts";
import type { NodeUpdateOptions } from "./node_updates.ts";

/** The kind of cluster: its container runtime and its admission rules. */
export type K8sFlavor = "vanilla" | "ocp";

/** How the metrics Service is exposed. */
export type MetricsServiceType = "ClusterIP" | "LoadBalancer";

/** The gRPC port `aggregate-metrics` receives pull attempts on. */
export const METRICS_GRPC_PORT = 8443;

/** Where `aggregate-metrics` keeps its state file, on an emptyDir volume. */
export const METRICS_STATE_DIR = "/var/lib/image-prefetcher";

/** The HTTP port `aggregate-metrics` serves `/metrics` on. */
export const METRICS_HTTP_PORT = 8080;

/** Where the init container finds the ConfigMap's `images.txt`. */
export const IMAGE_LIST_FILE = "/etc/image-prefetcher/image-list/images.txt";

/** Where the init container finds its projected token for the metrics server. */
export const TOKEN_FILE = "/etc/image-prefetcher/token/token";

/** Where the init container finds the pull Secret's `.dockerconfigjson`. */
export const DOCKER_CONFIG_FILE = "/etc/image-prefetcher/docker-config/.dockerconfigjson";

/** A Kubernetes object as written to the manifest. */
export interface KubernetesObject {
  /** The API group and version, like `apps/v1`. */
  apiVersion: string;
  /** The kind, like `DaemonSet`. */
  kind: string;
  /** Name, namespace, labels, annotations. */
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  /** The rest: `spec`, `rules`, `roleRef`, … */
  [field: string]: unknown;
}

/** A JSON object of a manifest, below the top level. */
export type Json = Record<string, unknown>;

/**
 * An instance's options, checked and with their defaults filled in: what every object of its
 * manifest is built from.
 */
export interface Instance {
  /** The instance name: of the DaemonSet, the ConfigMap, and the prefix of the other names. */
  name: string;
  /** The namespace of every object. */
  namespace: string;
  /** The kind of cluster. */
  flavor: K8sFlavor;
  /** The `image-prefetcher` image, `repo:tag` or `repo@sha256:…`. */
  image: string;
  /** The image pull Secret, if any. */
  secret?: string;
  /** Whether the metrics server runs (with `waves` too). */
  collectMetrics: boolean;
  /** Whether `fetch` pins the images. */
  pin: boolean;
  /** The type of the metrics Service. */
  metricsServiceType: MetricsServiceType;
  /** The node labels of the DaemonSet, `kubernetes.io/os: linux` included. */
  nodeSelector: Record<string, string>;
  /** The PriorityClass of the prefetch pods, if any. */
  priorityClass?: string;
  /** The CRI socket on the node. */
  criSocket: string;
  /** The `fetch` tuning flags given. */
  fetchFlags: FetchTuning;
  /** The credential provider's flags, volumes and mounts, if any. */
  credentialProvider?: CredentialProviderPodParts;
  /** The node labels and startup taint `fetch` updates. */
  nodeUpdates: NodeUpdateOptions;
  /** Whether fetch talks to the Kubernetes API (and so needs a ServiceAccount and a token). */
  nodeApi: boolean;
  /** The waves' tuning, if the instance has waves. */
  waves?: { firstWave: number; fanout: number; maxNodesPulling: number };
  /** With `--keep`: the main container runs `keep` (see `keep.ts`). */
  keep?: { refreshInterval: string };
}

/** The labels of every object of the instance, and the selector of its pods. */
export function labels(o: Instance, component: "prefetch" | "metrics"): Record<string, string> {
  return {
    "app.kubernetes.io/name": "image-prefetcher",
    "app.kubernetes.io/instance": o.name,
    "app.kubernetes.io/component": component,
  };
}

/** The metadata of an object of the instance: its name, namespace and labels. */
export function metadata(
  o: Instance,
  name: string,
  component: "prefetch" | "metrics",
): { name: string; namespace: string; labels: Record<string, string> } {
  return { name, namespace: o.namespace, labels: labels(o, component) };
}

/**
 * Whether the prefetch pods run as a ServiceAccount of their own (named after the instance):
 * on OpenShift (for the SCC), and whenever they call the API or the metrics server.
 */
export function hasPrefetchServiceAccount(o: Instance): boolean {
  return o.flavor === "ocp" || o.nodeApi || o.collectMetrics || o.keep !== undefined;
}

/** The name of the metrics Service, Deployment and NetworkPolicy. */
export function metricsName(o: Instance): string {
  return `${o.name}-metrics`;
}

/** The pod's `imagePullSecrets`, if the instance has a pull Secret. */
export function imagePullSecrets(o: Instance): Json {
  // The Secret is for the images to prefetch; given to the kubelet too, it also pulls the
  // prefetcher image from a private mirror. The kubelet uses a credential only for its registry.
  return o.secret === undefined ? {} : { imagePullSecrets: [{ name: o.secret }] };
}

/** The directory of an absolute path, without the trailing slash. */
export function dirname(path: string): string {
  return path.slice(0, path.lastIndexOf("/"));
}
