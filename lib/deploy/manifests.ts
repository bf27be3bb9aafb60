/**
 * The Kubernetes objects of one `image-prefetcher` instance: a DaemonSet that pulls the images
 * on every node, for vanilla Kubernetes (containerd) or OpenShift (CRI-O), and optionally the
 * `aggregate-metrics` Deployment and its Service (with `waves`, coordinating the pulls), the
 * bearer token they share and a NetworkPolicy that lets only the instance's own pods reach its
 * gRPC port.
 *
 * Imports nothing outside this repository, so `deploy.ts` runs straight from a URL.
 *
 * @module
 */
import denoConfig from "../../deno.json" with { type: "json" };
import { DeployInputError } from "./deploy_error.ts";
import { type FetchTuning, fetchTuningArgs, validateFetchTuning } from "./fetch_tuning.ts";
import {
  type CredentialProviderOptions,
  type CredentialProviderPodParts,
  credentialProviderPodParts,
} from "./credential_provider.ts";
import {
  nodeAccessObjects,
  nodeUpdateArgs,
  type NodeUpdateOptions,
  nodeVerbs,
  serviceAccountTokenVolume,
  validateNodeUpdates,
} from "./node_updates.ts";
import {
  isDns1035Label,
  isDns1123Label,
  isDns1123Subdomain,
  isLabelKey,
  isLabelValue,
} from "./k8s_names.ts";

/** The kind of cluster: its container runtime and its admission rules. */
export type K8sFlavor = "vanilla" | "ocp";

/** How the metrics Service is exposed. */
export type MetricsServiceType = "ClusterIP" | "LoadBalancer";

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

/** The gRPC port `aggregate-metrics` receives pull attempts on. */
export const METRICS_GRPC_PORT = 8443;

/** Where `aggregate-metrics` keeps its state file, on an emptyDir volume. */
export const METRICS_STATE_DIR = "/var/lib/image-prefetcher";

/** The HTTP port `aggregate-metrics` serves `/metrics` on. */
export const METRICS_HTTP_PORT = 8080;

/** Where the init container finds the ConfigMap's `images.txt`. */
export const IMAGE_LIST_FILE = "/etc/image-prefetcher/image-list/images.txt";

/** Where the prefetch and metrics containers find the instance's bearer token. */
export const TOKEN_FILE = "/etc/image-prefetcher/token/token";

/** Where the init container finds the pull Secret's `.dockerconfigjson`. */
export const DOCKER_CONFIG_FILE = "/etc/image-prefetcher/docker-config/.dockerconfigjson";

/** The longest instance name, so that `<name>-metrics` is still a valid Service name. */
export const MAX_NAME_LENGTH = 63 - "-metrics".length;

/** The user of the distroless `nonroot` image; the non-root containers run as it. */
const NONROOT_UID = 65532;

/** The SCC that lets a pod mount the CRI-O socket's directory, run as root and set `spc_t`. */
const OCP_PRIVILEGED_SCC = "privileged";

/** The default SCC of OpenShift 4.11+, pinned on the metrics pod so it gets no more. */
const OCP_RESTRICTED_SCC = "restricted-v2";

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
}

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

type Json = Record<string, unknown>;

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
  if (o.flavor === "ocp") objects.push(...openShiftAccess(o));
  if (o.nodeApi) objects.push(...nodeAccess(o));
  if (o.collectMetrics) {
    objects.push(...tokenObjects(o), metricsNetworkPolicy(o), metricsService(o));
    objects.push(metricsDeployment(o));
  }
  objects.push(daemonSet(o));
  return objects;
}

interface Resolved {
  name: string;
  namespace: string;
  flavor: K8sFlavor;
  image: string;
  secret?: string;
  collectMetrics: boolean;
  pin: boolean;
  metricsServiceType: MetricsServiceType;
  nodeSelector: Record<string, string>;
  priorityClass?: string;
  criSocket: string;
  fetchFlags: FetchTuning;
  credentialProvider?: CredentialProviderPodParts;
  nodeUpdates: NodeUpdateOptions;
  /** Whether fetch talks to the Kubernetes API (and so needs a ServiceAccount and a token). */
  nodeApi: boolean;
  waves?: { firstWave: number; fanout: number; maxNodesPulling: number };
}

/**
 * Checks every option and fills in the defaults. The checks run in a fixed order, so with
 * several bad inputs the first one named is always the same.
 */
function resolveOptions(name: string, options: ManifestOptions): Resolved {
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
): { waves: Resolved["waves"]; collectMetrics: boolean } {
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

function resolveWaves(options: ManifestOptions): Resolved["waves"] {
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

function labels(o: Resolved, component: "prefetch" | "metrics"): Record<string, string> {
  return {
    "app.kubernetes.io/name": "image-prefetcher",
    "app.kubernetes.io/instance": o.name,
    "app.kubernetes.io/component": component,
  };
}

function metadata(o: Resolved, name: string, component: "prefetch" | "metrics") {
  return { name, namespace: o.namespace, labels: labels(o, component) };
}

function metricsName(o: Resolved): string {
  return `${o.name}-metrics`;
}

function tokenName(o: Resolved): string {
  return `${o.name}-token`;
}

function sccRoleName(o: Resolved): string {
  return `${o.name}-use-${OCP_PRIVILEGED_SCC}-scc`;
}

/** Read-only root, no capabilities, no way to gain privileges: every container has this. */
function lockedDown(): Json {
  return {
    allowPrivilegeEscalation: false,
    privileged: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ["ALL"] },
  };
}

/** A non-root container; on OpenShift the SCC assigns the user, elsewhere the image's. */
function nonRoot(o: Resolved): Json {
  return {
    ...lockedDown(),
    runAsNonRoot: true,
    ...(o.flavor === "vanilla" ? { runAsUser: NONROOT_UID, runAsGroup: NONROOT_UID } : {}),
  };
}

function imagePullSecrets(o: Resolved): Json {
  // The Secret is for the images to prefetch; given to the kubelet too, it also pulls the
  // prefetcher image from a private mirror. The kubelet uses a credential only for its registry.
  return o.secret === undefined ? {} : { imagePullSecrets: [{ name: o.secret }] };
}

/** The ServiceAccount, Role and RoleBinding that let the prefetch pods use the privileged SCC. */
function openShiftAccess(o: Resolved): KubernetesObject[] {
  return [
    {
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: metadata(o, o.name, "prefetch"),
      automountServiceAccountToken: false,
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: metadata(o, sccRoleName(o), "prefetch"),
      rules: [{
        apiGroups: ["security.openshift.io"],
        resources: ["securitycontextconstraints"],
        resourceNames: [OCP_PRIVILEGED_SCC],
        verbs: ["use"],
      }],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: metadata(o, sccRoleName(o), "prefetch"),
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: sccRoleName(o) },
      subjects: [{ kind: "ServiceAccount", name: o.name, namespace: o.namespace }],
    },
  ];
}

/** The ServiceAccount (unless ocp made it) and the node RBAC of `fetch`'s API calls. */
function nodeAccess(o: Resolved): KubernetesObject[] {
  return [
    ...(o.flavor === "ocp" ? [] : [{
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: metadata(o, o.name, "prefetch"),
      automountServiceAccountToken: false,
    }]),
    ...nodeAccessObjects(
      o.name,
      o.namespace,
      o.nodeUpdates,
      (n) => metadata(o, n, "prefetch"),
    ) as KubernetesObject[],
  ];
}

function fetchArgs(o: Resolved): string[] {
  return [
    "fetch",
    "--cri-socket",
    o.criSocket,
    "--image-list-file",
    IMAGE_LIST_FILE,
    ...(o.secret === undefined ? [] : ["--docker-config", DOCKER_CONFIG_FILE]),
    ...(o.collectMetrics
      ? [
        "--metrics-endpoint",
        `${metricsName(o)}.${o.namespace}.svc:${METRICS_GRPC_PORT}`,
        "--metrics-token-file",
        TOKEN_FILE,
      ]
      : []),
    ...(o.credentialProvider?.args ?? []),
    ...nodeUpdateArgs(o.name, o.nodeUpdates),
    ...(o.waves ? ["--waves"] : []),
    ...fetchTuningArgs(o.fetchFlags),
    ...(o.pin ? ["--pin"] : []),
  ];
}

function dirname(path: string): string {
  return path.slice(0, path.lastIndexOf("/"));
}

/**
 * The DaemonSet: on every node, an init container pulls the images (`fetch`), then a container
 * sleeps, so the pod stays Running and a rollout shows when every node has its images.
 */
function daemonSet(o: Resolved): KubernetesObject {
  const selector = labels(o, "prefetch");
  return {
    apiVersion: "apps/v1",
    kind: "DaemonSet",
    metadata: metadata(o, o.name, "prefetch"),
    spec: {
      selector: { matchLabels: selector },
      // All nodes at once: an update re-pulls everywhere in parallel, and `kubectl rollout
      // status` returns when every node's init container has finished.
      updateStrategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: "100%" } },
      template: {
        metadata: {
          labels: selector,
          ...(o.flavor === "ocp"
            ? { annotations: { "openshift.io/required-scc": OCP_PRIVILEGED_SCC } }
            : {}),
        },
        spec: prefetchPodSpec(o),
      },
    },
  };
}

/** The prefetch pod: where it runs, who it runs as, its two containers and its volumes. */
function prefetchPodSpec(o: Resolved): Json {
  return {
    ...(o.flavor === "ocp" || o.nodeApi ? { serviceAccountName: o.name } : {}),
    // Only the init container gets a token, and only when it talks to the API.
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    // Cloud plugins ask the metadata server for the node's identity, as from the host.
    ...(o.credentialProvider?.hostNetwork
      ? { hostNetwork: true, dnsPolicy: "ClusterFirstWithHostNet" }
      : {}),
    securityContext: { seccompProfile: { type: "RuntimeDefault" } },
    nodeSelector: o.nodeSelector,
    tolerations: [{ operator: "Exists" }],
    ...(o.priorityClass === undefined ? {} : { priorityClassName: o.priorityClass }),
    ...imagePullSecrets(o),
    terminationGracePeriodSeconds: 5,
    initContainers: [fetchContainer(o)],
    containers: [sleepContainer(o)],
    volumes: prefetchVolumes(o),
  };
}

/** The init container: `fetch` pulls every image through the node's CRI socket. */
function fetchContainer(o: Resolved): Json {
  return {
    name: "prefetch",
    image: o.image,
    args: fetchArgs(o),
    env: [{ name: "NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } }],
    resources: {
      requests: { cpu: "50m", memory: "96Mi" },
      limits: { cpu: "500m", memory: "256Mi" },
    },
    securityContext: fetchSecurityContext(o),
    volumeMounts: fetchVolumeMounts(o),
  };
}

/** Root without capabilities, which is all it takes to connect to the CRI socket. */
function fetchSecurityContext(o: Resolved): Json {
  return {
    ...lockedDown(),
    // The CRI socket is root's (mode 0660): root is its owner, so it needs no
    // capability to connect.
    runAsUser: 0,
    runAsGroup: 0,
    runAsNonRoot: false,
    // On OpenShift, SELinux lets only spc_t connect to the CRI-O socket; this is what
    // `privileged: true` would have given, without the rest of it.
    ...(o.flavor === "ocp" ? { seLinuxOptions: { type: "spc_t" } } : {}),
  };
}

/** Everything `fetch` reads, read-only: the socket's directory, the lists and the credentials. */
function fetchVolumeMounts(o: Resolved): Json[] {
  return [
    { name: "cri-socket", mountPath: dirname(o.criSocket), readOnly: true },
    { name: "image-list", mountPath: dirname(IMAGE_LIST_FILE), readOnly: true },
    ...(o.secret === undefined ? [] : [{
      name: "docker-config",
      mountPath: dirname(DOCKER_CONFIG_FILE),
      readOnly: true,
    }]),
    ...(o.credentialProvider?.volumeMounts ?? []),
    ...(o.nodeApi ? [serviceAccountTokenVolume().mount] : []),
    ...(o.collectMetrics ? [tokenMount()] : []),
  ];
}

/** The main container: `sleep`, non-root, keeps the pod Running once the images are in. */
function sleepContainer(o: Resolved): Json {
  return {
    name: "sleep",
    image: o.image,
    args: ["sleep"],
    resources: {
      requests: { cpu: "5m", memory: "48Mi" },
      limits: { cpu: "50m", memory: "96Mi" },
    },
    securityContext: nonRoot(o),
  };
}

/** The volumes behind {@linkcode fetchVolumeMounts}. */
function prefetchVolumes(o: Resolved): Json[] {
  return [
    { name: "cri-socket", hostPath: { path: dirname(o.criSocket), type: "Directory" } },
    {
      name: "image-list",
      configMap: { name: o.name, items: [{ key: "images.txt", path: "images.txt" }] },
    },
    ...(o.secret === undefined ? [] : [{
      name: "docker-config",
      secret: {
        secretName: o.secret,
        items: [{ key: ".dockerconfigjson", path: ".dockerconfigjson" }],
        defaultMode: 0o400,
      },
    }]),
    ...(o.credentialProvider?.volumes ?? []),
    ...(o.nodeApi ? [serviceAccountTokenVolume().volume] : []),
    ...(o.collectMetrics ? [tokenVolume(o)] : []),
  ];
}

function metricsService(o: Resolved): KubernetesObject {
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

function metricsDeployment(o: Resolved): KubernetesObject {
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
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          securityContext: { seccompProfile: { type: "RuntimeDefault" } },
          nodeSelector: { "kubernetes.io/os": "linux" },
          ...imagePullSecrets(o),
          containers: [aggregateMetricsContainer(o)],
          volumes: [{ name: "state", emptyDir: { sizeLimit: "1Gi" } }, tokenVolume(o)],
        },
      },
    },
  };
}

/** The `aggregate-metrics` container: receives the attempts on gRPC, serves `/metrics`. */
function aggregateMetricsContainer(o: Resolved): Json {
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
      "--token-file",
      TOKEN_FILE,
      ...wavesArgs(o),
    ],
    // The attempts outlive a crash of the container: the pod's emptyDir is kept.
    volumeMounts: [{ name: "state", mountPath: METRICS_STATE_DIR }, tokenMount()],
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

function wavesArgs(o: Resolved): string[] {
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
 * The bearer token the nodes and the metrics server share: a Secret of type
 * `kubernetes.io/service-account-token`, which Kubernetes fills with a fresh token, so the
 * manifest holds no secret and applying it again keeps the token. Its ServiceAccount is bound to
 * no role and mounted nowhere; the token only proves to the server that a caller can read the
 * Secret, which the instance's pods can and other pods cannot.
 */
function tokenObjects(o: Resolved): KubernetesObject[] {
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

function tokenVolume(o: Resolved): Json {
  return {
    name: "token",
    secret: {
      secretName: tokenName(o),
      items: [{ key: "token", path: "token" }],
      defaultMode: 0o444,
    },
  };
}

function tokenMount(): Json {
  return { name: "token", mountPath: dirname(TOKEN_FILE), readOnly: true };
}

/**
 * Only the instance's prefetch pods reach the metrics server's gRPC port (submits and, with
 * waves, admissions); its HTTP port (reads, behind the token; /healthz) stays open.
 */
function metricsNetworkPolicy(o: Resolved): KubernetesObject {
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
