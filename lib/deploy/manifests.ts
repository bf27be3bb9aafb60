/**
 * The Kubernetes objects of one `image-prefetcher` instance: a DaemonSet that pulls the images
 * on every node, for vanilla Kubernetes (containerd) or OpenShift (CRI-O), and optionally the
 * `aggregate-metrics` Deployment and its Service (with `waves`, coordinating the pulls), the
 * ServiceAccount and RBAC its token checks need and a NetworkPolicy that lets only the instance's
 * own pods reach its gRPC port; with node updates, the admission policy that holds each node to
 * its own Node.
 *
 * This module checks the options and puts the objects in the order to apply them; each kind is
 * built in its own module: `daemon_set.ts`, `metrics_server_objects.ts`, `metrics_token.ts`,
 * `node_policy.ts` and `rbac_objects.ts`, on what `instance.ts` and `security_contexts.ts` share.
 *
 * Imports nothing outside this repository, so `deploy.ts` runs straight from a URL.
 *
 * @module
 */
import denoConfig from "../../deno.json" with { type: "json" };
import { DeployInputError } from "./deploy_error.ts";
import { type FetchTuning, validateFetchTuning } from "./fetch_tuning.ts";
import {
  type CredentialProviderOptions,
  credentialProviderPodParts,
} from "./credential_provider.ts";
import { type NodeUpdateOptions, nodeVerbs, validateNodeUpdates } from "./node_updates.ts";
import {
  isDns1035Label,
  isDns1123Label,
  isDns1123Subdomain,
  isLabelKey,
  isLabelValue,
} from "./k8s_names.ts";
import {
  type Instance,
  type K8sFlavor,
  type KubernetesObject,
  labels,
  type MetricsServiceType,
} from "./instance.ts";
import { nodePolicyObjects } from "./node_policy.ts";
import { daemonSet } from "./daemon_set.ts";
import {
  metricsDeployment,
  metricsNetworkPolicy,
  metricsService,
} from "./metrics_server_objects.ts";
import { tokenObjects } from "./metrics_token.ts";
import { nodeAccess, openShiftAccess, prefetchServiceAccount } from "./rbac_objects.ts";
import { eventsAccess, resolveKeep } from "./keep.ts";

export type { K8sFlavor, KubernetesObject, MetricsServiceType } from "./instance.ts";
export {
  DOCKER_CONFIG_FILE,
  IMAGE_LIST_FILE,
  METRICS_GRPC_PORT,
  METRICS_HTTP_PORT,
  METRICS_STATE_DIR,
  TOKEN_FILE,
} from "./instance.ts";

/** Every flavor, for messages and help. */
export const K8S_FLAVORS: readonly K8sFlavor[] = ["vanilla", "ocp"];

/** Every metrics Service type, for messages and help. */
export const METRICS_SERVICE_TYPES: readonly MetricsServiceType[] = ["ClusterIP", "LoadBalancer"];

/** Where the `image-prefetcher` image is pulled from unless `imageRepo` says otherwise. */
export const DEFAULT_IMAGE_REPO = "ghcr.io/x/image-prefetcher";

/** The image tag used unless `version` says otherwise: `v` and the version of `deno.json`. */
export const DEFAULT_VERSION: string = `v${denoConfig.version}`;

/** The CRI socket of each flavor's runtime on the node (containerd, CRI-O). */
export const DEFAULT_CRI_SOCKETS: Readonly<Record<K8sFlavor, string>> = {
  vanilla: "/run/containerd/containerd.sock",
  ocp: "/run/crio/crio.sock",
};

/** The longest instance name, so that `<name>-metrics` is still a valid Service name. */
export const MAX_NAME_LENGTH = 63 - "-metrics".length;

/** Options of {@linkcode renderManifests}. */
export interface ManifestOptions {
  /**
   * The namespace of every object; also in the metrics endpoint's DNS name.
   * @default {"default"}
   */
  namespace?: string;
  /**
   * The kind of cluster: `vanilla` (containerd) or `ocp` (OpenShift, CRI-O).
   * @default {"vanilla"}
   */
  flavor?: K8sFlavor;
  /**
   * Where the `image-prefetcher` image lives, without tag (a mirror, for air-gapped clusters).
   * @default {DEFAULT_IMAGE_REPO}
   */
  imageRepo?: string;
  /**
   * The image tag, or a digest (`sha256:…`) to pin the image.
   * @default {DEFAULT_VERSION}
   */
  version?: string;
  /**
   * An image pull Secret of type `kubernetes.io/dockerconfigjson` in the same namespace, with
   * credentials for the images to prefetch.
   */
  secret?: string;
  /**
   * Also run `aggregate-metrics` and have every node report its pull attempts to it.
   * @default {false}
   */
  collectMetrics?: boolean;
  /**
   * Have `fetch` pin the images (`fetch --pin`), so the kubelet's image garbage collection keeps
   * them; containerd 1.7 or newer (not with `flavor: "ocp"`).
   * @default {false}
   */
  pin?: boolean;
  /**
   * The type of the metrics Service; only with `collectMetrics`. `ClusterIP` exposes nothing
   * outside the cluster.
   * @default {"ClusterIP"}
   */
  metricsServiceType?: MetricsServiceType;
  /**
   * Labels a node must have to get the images; `kubernetes.io/os: linux` is always added.
   * @default {{}}
   */
  nodeSelector?: Readonly<Record<string, string>>;
  /** The PriorityClass of the prefetch pods, so they are scheduled on full nodes too. */
  priorityClass?: string;
  /**
   * The CRI socket on the node; its directory is mounted read-only.
   * @default {DEFAULT_CRI_SOCKETS[flavor]}
   */
  criSocket?: string;
  /**
   * Cluster-wide waves: nodes ask the metrics server before each pull, so the registry serves
   * each layer about once. Brings the metrics server (implies `collectMetrics`).
   * @default {false}
   */
  waves?: boolean;
  /**
   * With `waves`: nodes that pull an image while no node has it.
   * @default {1}
   */
  firstWave?: number;
  /**
   * With `waves`: once k nodes have an image, up to k × fanout more may pull it.
   * @default {4}
   */
  fanout?: number;
  /**
   * With `waves`: how many nodes may pull at once in the whole cluster; 0 for no bound.
   * @default {0}
   */
  maxNodesPulling?: number;
  /**
   * `fetch` flags for the init container, by name (`"overall-timeout": "30m"`).
   * @default {{}}
   */
  fetchFlags?: FetchTuning;
  /**
   * Run the node's kubelet credential provider plugins: whose nodes (gke, eks, aks) or custom
   * paths; the files are mounted read-only from the host.
   */
  credentialProvider?: CredentialProviderOptions;
  /** Label each node with the run's outcome, and remove a startup taint, after each run. */
  nodeUpdates?: NodeUpdateOptions;
  /**
   * Keep the nodes warm: the main container runs `keep` instead of `sleep` (follows edits of
   * the list, refreshes tags, releases its pins of what left the list; failed images become
   * Events on the pod).
   * @default {false}
   */
  keep?: boolean;
  /**
   * With `keep`: how often every listed tag is pulled again.
   * @default {"6h"}
   */
  refreshInterval?: string;
}

/**
 * Returns the objects of instance `name` in the order to apply them: for `ocp` the
 * ServiceAccount, Role and RoleBinding; with `collectMetrics` the metrics Service and
 * Deployment; last the DaemonSet. Throws {@linkcode DeployInputError} for any bad input, before
 * building anything.
 *
 * @example Usage
 * ```ts
 * import { renderManifests } from "./manifests.ts";
 *
 * const objects = renderManifests("my-images", { flavor: "ocp", collectMetrics: true });
 * objects.map((o) => o.kind); // ["ServiceAccount", "Role", "RoleBinding", "Service", ...]
 * ```
 */
export function renderManifests(name: string, options: ManifestOptions = {}): KubernetesObject[] {
  const o = resolveOptions(name, options);
  const objects: KubernetesObject[] = [];
  objects.push(...prefetchServiceAccount(o));
  if (o.flavor === "ocp") objects.push(...openShiftAccess(o));
  objects.push(...nodeAccess(o));
  if (o.nodeApi) objects.push(...nodePolicyObjects(o, labels(o, "prefetch")));
  if (o.keep) objects.push(...eventsAccess(o));
  if (o.collectMetrics) {
    objects.push(...tokenObjects(o), ...metricsNetworkPolicy(o), metricsService(o));
    objects.push(metricsDeployment(o));
  }
  objects.push(daemonSet(o));
  return objects;
}

/**
 * Checks every option and fills in the defaults. The checks run in a fixed order, so with
 * several bad inputs the first one named is always the same.
 */
function resolveOptions(name: string, options: ManifestOptions): Instance {
  checkName(name);
  const namespace = resolveNamespace(options);
  const flavor = resolveFlavor(options);
  const imageRepo = options.imageRepo ?? DEFAULT_IMAGE_REPO;
  const version = options.version ?? DEFAULT_VERSION;
  checkSecret(options);
  const { waves, collectMetrics } = resolveMetrics(options);
  const pin = resolvePin(options, flavor);
  const metricsServiceType = resolveMetricsServiceType(options);
  const nodeSelector = resolveNodeSelector(options);
  checkPriorityClass(options);
  const criSocket = resolveCriSocket(options, flavor);
  const fetchFlags = { ...options.fetchFlags };
  validateFetchTuning(fetchFlags);
  const nodeUpdates = options.nodeUpdates ?? {};
  validateNodeUpdates(name, nodeUpdates);
  const keep = resolveKeep(options);
  return {
    name,
    namespace,
    flavor,
    image: imageReference(imageRepo, version),
    secret: options.secret,
    collectMetrics,
    pin,
    metricsServiceType,
    nodeSelector,
    priorityClass: options.priorityClass,
    criSocket,
    fetchFlags,
    credentialProvider: options.credentialProvider &&
      credentialProviderPodParts(options.credentialProvider),
    nodeUpdates,
    nodeApi: nodeVerbs(nodeUpdates).length > 0,
    waves,
    ...(keep ? { keep } : {}),
  };
}

/** The instance name must leave room for `-metrics` in a Service name. */
function checkName(name: string): void {
  if (!(name.length <= MAX_NAME_LENGTH && isDns1035Label(name))) {
    throw new DeployInputError(
      `The instance name "${name}" is not valid: use at most ${MAX_NAME_LENGTH} lowercase ` +
        `letters, digits and '-', starting with a letter and ending with a letter or digit, ` +
        `like my-images.`,
    );
  }
}

function resolveNamespace(options: ManifestOptions): string {
  const namespace = options.namespace ?? "default";
  if (!isDns1123Label(namespace)) {
    throw new DeployInputError(
      `--namespace "${namespace}" is not a valid namespace name: use at most 63 lowercase ` +
        `letters, digits and '-', like prefetch-images.`,
    );
  }
  return namespace;
}

function resolveFlavor(options: ManifestOptions): K8sFlavor {
  const flavor = options.flavor ?? "vanilla";
  if (!K8S_FLAVORS.includes(flavor)) {
    throw new DeployInputError(
      `--k8s-flavor must be vanilla (containerd) or ocp (OpenShift, CRI-O), not "${flavor}".`,
    );
  }
  return flavor;
}

function checkSecret(options: ManifestOptions): void {
  if (options.secret !== undefined && !isDns1123Subdomain(options.secret)) {
    throw new DeployInputError(
      `--secret "${options.secret}" is not a valid Secret name: use lowercase letters, digits, ` +
        `'-' and '.', like my-pull-secret.`,
    );
  }
}

/** Whether the metrics server runs (`waves` brings it too); refuses its flags without it. */
function resolveMetrics(
  options: ManifestOptions,
): { waves: Instance["waves"]; collectMetrics: boolean } {
  const waves = resolveWaves(options);
  const collectMetrics = (options.collectMetrics ?? false) || waves !== undefined;
  if (options.metricsServiceType !== undefined && !collectMetrics) {
    throw new DeployInputError(
      "--metrics-service-type only applies with --collect-metrics; add --collect-metrics or " +
        "leave --metrics-service-type out.",
    );
  }
  return { waves, collectMetrics };
}

function resolvePin(options: ManifestOptions, flavor: K8sFlavor): boolean {
  const pin = options.pin ?? false;
  if (pin && flavor === "ocp") {
    throw new DeployInputError(
      "--pin works with containerd (--k8s-flavor vanilla) only: CRI-O on OpenShift does not " +
        "take pins from a client; leave --pin out there.",
    );
  }
  return pin;
}

function resolveMetricsServiceType(options: ManifestOptions): MetricsServiceType {
  const metricsServiceType = options.metricsServiceType ?? "ClusterIP";
  if (!METRICS_SERVICE_TYPES.includes(metricsServiceType)) {
    throw new DeployInputError(
      `--metrics-service-type must be ClusterIP or LoadBalancer, not "${metricsServiceType}".`,
    );
  }
  return metricsServiceType;
}

/** The given labels and `kubernetes.io/os: linux`, each checked. */
function resolveNodeSelector(options: ManifestOptions): Record<string, string> {
  const nodeSelector = { "kubernetes.io/os": "linux", ...options.nodeSelector };
  for (const [key, value] of Object.entries(nodeSelector)) {
    if (!isLabelKey(key) || !isLabelValue(value)) {
      throw new DeployInputError(
        `--node-selector "${key}=${value}" is not a valid label: keys are [prefix/]name and ` +
          `values at most 63 of [A-Za-z0-9-_.], like node-role.kubernetes.io/worker=.`,
      );
    }
  }
  return nodeSelector;
}

function checkPriorityClass(options: ManifestOptions): void {
  if (options.priorityClass !== undefined && !isDns1123Subdomain(options.priorityClass)) {
    throw new DeployInputError(
      `--priority-class "${options.priorityClass}" is not a valid PriorityClass name: use ` +
        `lowercase letters, digits, '-' and '.', like system-node-critical.`,
    );
  }
}

/** The flavor's socket unless given; its directory is what gets mounted, so it needs one. */
function resolveCriSocket(options: ManifestOptions, flavor: K8sFlavor): string {
  const criSocket = options.criSocket ?? DEFAULT_CRI_SOCKETS[flavor];
  if (
    !/^(\/[A-Za-z0-9_.+-]+){2,}$/.test(criSocket) ||
    criSocket.split("/").some((part) => part === "." || part === "..")
  ) {
    throw new DeployInputError(
      `--cri-socket "${criSocket}" must be an absolute path to a socket in a directory below /, ` +
        `like /run/k3s/containerd/containerd.sock.`,
    );
  }
  return criSocket;
}

function resolveWaves(options: ManifestOptions): Instance["waves"] {
  const tuning = [
    ["first-wave", options.firstWave, 1],
    ["fanout", options.fanout, 1],
    ["max-nodes-pulling", options.maxNodesPulling, 0],
  ] as const;
  for (const [flag, value, min] of tuning) {
    if (value === undefined) continue;
    if (!options.waves) {
      throw new DeployInputError(`--${flag} tunes --waves: add --waves, or leave --${flag} out.`);
    }
    if (!Number.isInteger(value) || value < min || value > 100_000) {
      throw new DeployInputError(
        `--${flag} must be a whole number from ${min} to 100000, not "${value}".`,
      );
    }
  }
  if (!options.waves) return undefined;
  return {
    firstWave: options.firstWave ?? 1,
    fanout: options.fanout ?? 4,
    maxNodesPulling: options.maxNodesPulling ?? 0,
  };
}

/** `repo:tag`, or `repo@sha256:…` for a digest; checks both parts. */
function imageReference(repo: string, version: string): string {
  const lastPart = repo.slice(repo.lastIndexOf("/") + 1);
  if (repo.includes("@") || (repo.includes("/") && lastPart.includes(":"))) {
    throw new DeployInputError(
      `--image-repo "${repo}" must not include a tag or digest; give the tag with --version.`,
    );
  }
  const component = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
  const host =
    "[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::\\d+)?";
  if (!new RegExp(`^(?:${host}/)?${component}(?:/${component})*$`).test(repo)) {
    throw new DeployInputError(
      `--image-repo "${repo}" is not a valid image repository; write it like ` +
        `registry.example.com:5000/mirror/image-prefetcher.`,
    );
  }
  if (/^sha256:[a-f0-9]{64}$/.test(version)) return `${repo}@${version}`;
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(version)) {
    throw new DeployInputError(
      `--version "${version}" is not a valid image tag or sha256 digest; write it like ` +
        `${DEFAULT_VERSION}.`,
    );
  }
  return `${repo}:${version}`;
}
