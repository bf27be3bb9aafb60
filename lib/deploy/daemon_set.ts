/**
 * The DaemonSet of an instance: on every node, an init container pulls the images, then a
 * container sleeps.
 *
 * @module
 */
import { fetchTuningArgs } from "./fetch_tuning.ts";
import { nodeUpdateArgs, serviceAccountTokenVolume } from "./node_updates.ts";
import {
  dirname,
  DOCKER_CONFIG_FILE,
  hasPrefetchServiceAccount,
  IMAGE_LIST_FILE,
  imagePullSecrets,
  type Instance,
  type Json,
  type KubernetesObject,
  labels,
  metadata,
  METRICS_GRPC_PORT,
  metricsName,
  TOKEN_FILE,
} from "./instance.ts";
import { lockedDown, nonRoot, OCP_PRIVILEGED_SCC } from "./security_contexts.ts";
import { tokenMount, tokenVolume } from "./metrics_token.ts";
import { keepContainer, podIdentityEnv } from "./keep.ts";

/** The command line of the init container: `fetch` and its flags. */
function fetchArgs(o: Instance): string[] {
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
    ...(o.pin ? ["--pin", "--pin-owner", o.name] : []),
  ];
}

/**
 * The DaemonSet: on every node, an init container pulls the images (`fetch`), then a container
 * sleeps, so the pod stays Running and a rollout shows when every node has its images.
 */
export function daemonSet(o: Instance): KubernetesObject {
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
function prefetchPodSpec(o: Instance): Json {
  return {
    ...(hasPrefetchServiceAccount(o) ? { serviceAccountName: o.name } : {}),
    // Tokens are mounted only into the containers that use them: for the API when they talk to
    // it, and for the metrics server (its own audience) when they report.
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
    containers: [o.keep ? keepContainer(fetchContainer(o), o.keep) : sleepContainer(o)],
    volumes: prefetchVolumes(o),
  };
}

/** The init container: `fetch` pulls every image through the node's CRI socket. */
function fetchContainer(o: Instance): Json {
  return {
    name: "prefetch",
    image: o.image,
    args: fetchArgs(o),
    env: o.keep
      ? podIdentityEnv()
      : [{ name: "NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } }],
    resources: {
      requests: { cpu: "50m", memory: "96Mi" },
      limits: { cpu: "500m", memory: "256Mi" },
    },
    securityContext: fetchSecurityContext(o),
    volumeMounts: fetchVolumeMounts(o),
  };
}

/** Root without capabilities, which is all it takes to connect to the CRI socket. */
function fetchSecurityContext(o: Instance): Json {
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
function fetchVolumeMounts(o: Instance): Json[] {
  return [
    { name: "cri-socket", mountPath: dirname(o.criSocket), readOnly: true },
    { name: "image-list", mountPath: dirname(IMAGE_LIST_FILE), readOnly: true },
    ...(o.secret === undefined ? [] : [{
      name: "docker-config",
      mountPath: dirname(DOCKER_CONFIG_FILE),
      readOnly: true,
    }]),
    ...(o.credentialProvider?.volumeMounts ?? []),
    ...(o.nodeApi || o.keep ? [serviceAccountTokenVolume().mount] : []),
    ...(o.collectMetrics ? [tokenMount()] : []),
  ];
}

/** The main container: `sleep`, non-root, keeps the pod Running once the images are in. */
function sleepContainer(o: Instance): Json {
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
function prefetchVolumes(o: Instance): Json[] {
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
    ...(o.nodeApi || o.keep ? [serviceAccountTokenVolume().volume] : []),
    ...(o.collectMetrics ? [tokenVolume(o)] : []),
  ];
}
