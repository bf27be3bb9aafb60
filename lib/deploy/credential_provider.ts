/**
 * `deploy --credential-provider`: lets `fetch` run the node's kubelet credential provider plugins
 * by mounting, read-only and at the same paths, the files the kubelet of each managed Kubernetes
 * uses, and passing them to `fetch`'s `--image-credential-provider-*` flags.
 *
 * @module
 */
import { DeployInputError } from "./deploy_error.ts";

/** Whose nodes: a managed Kubernetes whose paths are known, or `custom` with paths given. */
export type CredentialProviderKind = "gke" | "eks" | "aks" | "custom";

/** Every kind, for messages and help. */
export const CREDENTIAL_PROVIDER_KINDS: readonly CredentialProviderKind[] = [
  "gke",
  "eks",
  "aks",
  "custom",
];

/** Where a node keeps its kubelet's credential provider config and plugins. */
export interface NodeCredentialFiles {
  /** The kubelet's `--image-credential-provider-config`. */
  configFile: string;
  /** The kubelet's `--image-credential-provider-bin-dir`. */
  binDir: string;
  /** Other host files the plugins read (named in the config's `args`), mounted read-only too. */
  extraFiles: readonly string[];
}

/**
 * The host paths each managed Kubernetes gives its kubelet, as read from its node bootstrap code
 * (checked in November 2026; a node image that moves them needs `--credential-provider-config`
 * and `--credential-provider-bin-dir`).
 */
export const NODE_CREDENTIAL_FILES: Readonly<Record<"gke" | "eks" | "aks", NodeCredentialFiles>> = {
  // awslabs/amazon-eks-ami, nodeadm/internal/kubelet/image-credential-provider.go (AL2023):
  // imageCredentialProviderRoot = /etc/eks/image-credential-provider, config.json in it, and
  // the bin dir is the directory of ecr-credential-provider, the same one. The AL2 AMI's
  // bootstrap.sh used the same paths.
  eks: {
    configFile: "/etc/eks/image-credential-provider/config.json",
    binDir: "/etc/eks/image-credential-provider",
    extraFiles: [],
  },
  // GKE's node configure.sh (install-auth-provider-gcp) moves auth-provider-gcp into ${KUBE_BIN}
  // (/home/kubernetes/bin); GKE nodes' kubelet runs with
  // --image-credential-provider-config=/etc/srv/kubernetes/cri_auth_config.yaml
  // --image-credential-provider-bin-dir=/home/kubernetes/bin (kubelet command lines of COS and
  // Ubuntu GKE nodes quoted in public reports; the open-source GCE scripts in
  // kubernetes/kubernetes cluster/gce default to /home/kubernetes/bin as well).
  gke: {
    configFile: "/etc/srv/kubernetes/cri_auth_config.yaml",
    binDir: "/home/kubernetes/bin",
    extraFiles: [],
  },
  // Azure/AgentBaker, parts/linux/cloud-init/artifacts/cse_config.sh configCredentialProvider
  // writes /var/lib/kubelet/credential-provider-config.yaml, whose acr-credential-provider gets
  // args [/etc/kubernetes/azure.json]; pkg/agent/baker_test.go ("OOT credentialprovider") has
  // --image-credential-provider-bin-dir=/var/lib/kubelet/credential-provider.
  aks: {
    configFile: "/var/lib/kubelet/credential-provider-config.yaml",
    binDir: "/var/lib/kubelet/credential-provider",
    extraFiles: ["/etc/kubernetes/azure.json"],
  },
};

/** The choice on `deploy`'s command line. */
export interface CredentialProviderOptions {
  /** Whose nodes. */
  kind: CredentialProviderKind;
  /** Overrides the config file's host path; required for `custom`. */
  configFile?: string;
  /** Overrides the plugin directory's host path; required for `custom`. */
  binDir?: string;
}

/** What the DaemonSet gets: `fetch` arguments, volumes, mounts, and the pod's network. */
export interface CredentialProviderPodParts {
  /** Arguments for `fetch`. */
  args: string[];
  /** Volumes of the pod. */
  volumes: Record<string, unknown>[];
  /** Mounts of the init container. */
  volumeMounts: Record<string, unknown>[];
  /**
   * Whether the pod uses the node's network. True for the clouds: their plugins ask the
   * instance metadata server for the node's identity, as the kubelet does from the host; in a
   * pod network, GKE Workload Identity would answer with the pod's identity instead, and EC2's
   * IMDSv2 hop limit of 1 (Karpenter's default) would not answer at all.
   */
  hostNetwork: boolean;
}

/**
 * Checks the choice and returns what the DaemonSet needs for it: every file mounted read-only
 * at its host path (so paths inside the config, like AKS's `/etc/kubernetes/azure.json`, resolve),
 * and `fetch` pointed at them.
 *
 * @example Usage
 * ```ts
 * import { credentialProviderPodParts } from "./credential_provider.ts";
 *
 * credentialProviderPodParts({ kind: "eks" }).args;
 * // ["--image-credential-provider-config", "/etc/eks/image-credential-provider/config.json",
 * //  "--image-credential-provider-bin-dir", "/etc/eks/image-credential-provider"]
 * ```
 *
 * @throws {DeployInputError} For an unknown kind, a missing path for `custom`, or a bad path.
 */
export function credentialProviderPodParts(
  options: CredentialProviderOptions,
): CredentialProviderPodParts {
  const files = resolveFiles(options);
  const mounts: Array<{ path: string; type: "File" | "Directory" }> = [
    { path: files.binDir, type: "Directory" },
    ...(files.configFile.startsWith(`${files.binDir}/`)
      ? []
      : [{ path: files.configFile, type: "File" as const }]),
    ...files.extraFiles.map((path) => ({ path, type: "File" as const })),
  ];
  return {
    args: [
      "--image-credential-provider-config",
      files.configFile,
      "--image-credential-provider-bin-dir",
      files.binDir,
    ],
    volumes: mounts.map((mount, i) => ({
      name: `credential-provider-${i}`,
      hostPath: { path: mount.path, type: mount.type },
    })),
    volumeMounts: mounts.map((mount, i) => ({
      name: `credential-provider-${i}`,
      mountPath: mount.path,
      readOnly: true,
    })),
    hostNetwork: options.kind !== "custom",
  };
}

function resolveFiles(options: CredentialProviderOptions): NodeCredentialFiles {
  if (!CREDENTIAL_PROVIDER_KINDS.includes(options.kind)) {
    throw new DeployInputError(
      `--credential-provider must be ${CREDENTIAL_PROVIDER_KINDS.join(", ")}, not ` +
        `"${options.kind}".`,
    );
  }
  if (options.kind === "custom" && (!options.configFile || !options.binDir)) {
    throw new DeployInputError(
      "--credential-provider custom needs --credential-provider-config and " +
        "--credential-provider-bin-dir: the host paths of the kubelet's " +
        "--image-credential-provider-config and --image-credential-provider-bin-dir.",
    );
  }
  const known = options.kind === "custom"
    ? { configFile: "", binDir: "", extraFiles: [] }
    : NODE_CREDENTIAL_FILES[options.kind];
  const files = {
    configFile: options.configFile ?? known.configFile,
    binDir: (options.binDir ?? known.binDir).replace(/(.)\/+$/, "$1"),
    extraFiles: known.extraFiles,
  };
  for (
    const [flag, path] of [
      ["--credential-provider-config", files.configFile],
      ["--credential-provider-bin-dir", files.binDir],
    ]
  ) {
    if (!/^(\/[A-Za-z0-9_.+-]+)+$/.test(path) || path.split("/").some((p) => p === "..")) {
      throw new DeployInputError(
        `${flag} "${path}" must be an absolute path on the node, like /etc/kubernetes/credential-providers.`,
      );
    }
  }
  return files;
}
