/**
 * The command line of `deploy`: flags before or after the instance name, `--flag value` or
 * `--flag=value`, one or two dashes (the original was a Go program, whose flag package accepts
 * both).
 *
 * @module
 */
import { DeployInputError } from "./deploy_error.ts";
import {
  CREDENTIAL_PROVIDER_KINDS,
  type CredentialProviderKind,
  type CredentialProviderOptions,
} from "./credential_provider.ts";
import { DEFAULT_NODE_LABEL_PREFIX, type NodeUpdateOptions } from "./node_updates.ts";
import { FETCH_TUNING_DEFAULTS, type FetchTuning, type FetchTuningFlag } from "./fetch_tuning.ts";
import {
  DEFAULT_CRI_SOCKETS,
  DEFAULT_IMAGE_REPO,
  DEFAULT_VERSION,
  K8S_FLAVORS,
  type K8sFlavor,
  type ManifestOptions,
  METRICS_SERVICE_TYPES,
  type MetricsServiceType,
} from "./manifests.ts";

interface FlagSpec {
  /** Takes a value (`string`) or not (`boolean`). */
  type: "string" | "boolean";
  /** The placeholder of the value in `--help`. */
  value?: string;
  /** The default, as shown in `--help`. */
  default?: string;
  /** The line of `--help`. */
  help: string;
}

/** Every flag of `deploy`, with its default and its line of `--help`. */
export const DEPLOY_FLAGS: Readonly<Record<string, FlagSpec>> = {
  version: {
    type: "string",
    value: "tag",
    default: DEFAULT_VERSION,
    help: "Tag (or sha256:… digest) of the image-prefetcher image.",
  },
  "image-repo": {
    type: "string",
    value: "repo",
    default: DEFAULT_IMAGE_REPO,
    help: "Where the image-prefetcher image lives (a mirror, for air-gapped clusters).",
  },
  "k8s-flavor": {
    type: "string",
    value: K8S_FLAVORS.join("|"),
    default: "vanilla",
    help: "vanilla: containerd, no extra rules; ocp: OpenShift, CRI-O and SCCs.",
  },
  namespace: {
    type: "string",
    value: "name",
    default: "default",
    help: "Namespace of every object (also in the metrics endpoint's name).",
  },
  secret: {
    type: "string",
    value: "name",
    help: "Image pull Secret (kubernetes.io/dockerconfigjson) for the images, same namespace.",
  },
  "collect-metrics": {
    type: "boolean",
    help: "Also run aggregate-metrics, and have every node report its pull attempts to it.",
  },
  pin: {
    type: "boolean",
    help: "fetch --pin: keep the images out of the kubelet's image garbage collection " +
      "(containerd 1.7 or newer).",
  },
  keep: {
    type: "boolean",
    help: "The main container runs keep instead of sleep: edits of the list are pulled within " +
      "seconds, tags refreshed, pins of what left the list released; failed images become " +
      "Events on the pod (a Role to create and patch events in the namespace).",
  },
  "refresh-interval": {
    type: "string",
    value: "duration",
    default: "6h",
    help: "With --keep: how often every node pulls every listed tag again (±10% jitter).",
  },
  waves: {
    type: "boolean",
    help: "Cluster-wide waves: nodes ask the metrics server before each pull, so the " +
      "registry (or cache) serves each layer about once. Brings the metrics server.",
  },
  "first-wave": {
    type: "string",
    value: "n",
    default: "1",
    help: "With --waves: how many nodes pull an image while no node has it yet.",
  },
  fanout: {
    type: "string",
    value: "n",
    default: "4",
    help: "With --waves: once k nodes have an image, up to k x n more pull it at once " +
      "(large behind a pull-through cache, small with peer-to-peer like Spegel).",
  },
  "max-nodes-pulling": {
    type: "string",
    value: "n",
    default: "0",
    help: "With --waves: how many nodes may pull at once in the whole cluster; 0 for no bound.",
  },
  "metrics-service-type": {
    type: "string",
    value: METRICS_SERVICE_TYPES.join("|"),
    default: "ClusterIP",
    help: "LoadBalancer exposes the metrics' HTTP port outside the cluster (each read needs a " +
      "token that RBAC lets get the path).",
  },
  "node-selector": {
    type: "string",
    value: "k=v,…",
    help: "Only nodes with these labels get the images (repeatable).",
  },
  "priority-class": {
    type: "string",
    value: "name",
    help: "PriorityClass of the prefetch pods, so they fit on full nodes too.",
  },
  "cri-socket": {
    type: "string",
    value: "path",
    default: `${DEFAULT_CRI_SOCKETS.vanilla}, ocp: ${DEFAULT_CRI_SOCKETS.ocp}`,
    help: "The runtime's CRI socket on the node (k3s: /run/k3s/containerd/containerd.sock).",
  },
  "max-parallel": {
    type: "string",
    value: "n",
    default: FETCH_TUNING_DEFAULTS["max-parallel"],
    help: "fetch: how many images a node pulls at once; 0 pulls them all at once.",
  },
  "image-list-timeout": {
    type: "string",
    value: "duration",
    default: FETCH_TUNING_DEFAULTS["image-list-timeout"],
    help: "fetch: how long to wait for the image list file.",
  },
  "cri-connect-timeout": {
    type: "string",
    value: "duration",
    default: FETCH_TUNING_DEFAULTS["cri-connect-timeout"],
    help: "fetch: how long to wait for the runtime to answer on its socket.",
  },
  "initial-pull-attempt-timeout": {
    type: "string",
    value: "duration",
    default: FETCH_TUNING_DEFAULTS["initial-pull-attempt-timeout"],
    help: "fetch: time for a first pull attempt; doubled for each next one.",
  },
  "max-pull-attempt-timeout": {
    type: "string",
    value: "duration",
    default: FETCH_TUNING_DEFAULTS["max-pull-attempt-timeout"],
    help: "fetch: the most time any one pull attempt gets.",
  },
  "overall-timeout": {
    type: "string",
    value: "duration",
    default: FETCH_TUNING_DEFAULTS["overall-timeout"],
    help: "fetch: nothing on a node runs longer than this.",
  },
  "initial-pull-attempt-delay": {
    type: "string",
    value: "duration",
    default: FETCH_TUNING_DEFAULTS["initial-pull-attempt-delay"],
    help: "fetch: wait after a first failed attempt; doubled after each next one.",
  },
  "max-pull-attempt-delay": {
    type: "string",
    value: "duration",
    default: FETCH_TUNING_DEFAULTS["max-pull-attempt-delay"],
    help: "fetch: the longest wait between two attempts.",
  },
  "stall-timeout": {
    type: "string",
    value: "duration",
    default: FETCH_TUNING_DEFAULTS["stall-timeout"],
    help: "fetch: cut and retry a pull that has received no bytes for this long.",
  },
  progress: {
    type: "string",
    value: "auto|off",
    default: FETCH_TUNING_DEFAULTS.progress,
    help: "fetch: watch each pull's bytes (auto) or use only the wall-clock timeouts (off).",
  },
  "progress-interval": {
    type: "string",
    value: "duration",
    default: FETCH_TUNING_DEFAULTS["progress-interval"],
    help: "fetch: how often a downloading image logs a progress line.",
  },
  "credential-provider": {
    type: "string",
    value: CREDENTIAL_PROVIDER_KINDS.join("|"),
    help: "Run the node's kubelet credential provider plugins (ECR, GAR/GCR, ACR, …) for the " +
      "images, from the host paths of these nodes.",
  },
  "credential-provider-config": {
    type: "string",
    value: "path",
    help: "With --credential-provider: the node's kubelet --image-credential-provider-config.",
  },
  "credential-provider-bin-dir": {
    type: "string",
    value: "path",
    help: "With --credential-provider: the node's kubelet --image-credential-provider-bin-dir.",
  },
  "label-nodes": {
    type: "boolean",
    help: "After each node's run, label it <prefix>/<name>=succeeded or =failed (RBAC: patch " +
      "on nodes).",
  },
  "node-label-prefix": {
    type: "string",
    value: "prefix",
    default: DEFAULT_NODE_LABEL_PREFIX,
    help: "The label's prefix; the default is the original tool's, so its nodeSelectors work.",
  },
  "remove-startup-taint": {
    type: "string",
    value: "key[=value]:effect",
    help: "Remove this taint from each node once its images are in (RBAC: get and patch on " +
      "nodes); see the README for Karpenter and node groups.",
  },
  help: { type: "boolean", help: "Show this help." },
};

/** The help text of `deploy`. */
export function deployHelp(): string {
  const rows = Object.entries(DEPLOY_FLAGS).map(([name, spec]) => {
    const left = `  --${name}${spec.value ? ` ${spec.value}` : ""}`;
    const def = spec.default !== undefined ? ` (default ${spec.default})` : "";
    // A long flag gets its help on the next line, so the help column stays straight.
    return left.length < 40
      ? `${left.padEnd(40)}${spec.help}${def}`
      : `${left}\n${" ".repeat(40)}${spec.help}${def}`;
  });
  return [
    "Usage: deploy.ts <name> [flags]",
    "",
    "Prints the Kubernetes manifest of an image-prefetcher instance: a DaemonSet whose init",
    "container pulls every image of the ConfigMap <name> (key images.txt) onto every node.",
    "",
    "Flags (before or after the name):",
    ...rows,
    "",
    "Example:",
    "  deno run https://…/deploy.ts my-images --namespace prefetch-images | kubectl apply -f -",
    "",
    "Exit status: 0 with the manifest on standard output; 1 with one line on standard error.",
  ].join("\n");
}

/** What the command line asks for: a manifest, or the help text. */
export type DeployInvocation =
  | { kind: "render"; name: string; options: ManifestOptions }
  | { kind: "help" };

const HELP = 'run "deploy.ts --help" for the flags';

/**
 * Parses `deploy`'s arguments into the instance name and the options of `renderManifests`.
 * Checks the command line's shape (known flags, values present, one name); the values are
 * checked by `renderManifests`. Throws {@linkcode DeployInputError}.
 */
export function parseDeployArgs(args: readonly string[]): DeployInvocation {
  const commandLine = splitCommandLine(args);
  if (commandLine === "help" || commandLine.flags.on("help")) return { kind: "help" };
  const name = onlyName(commandLine.positionals);
  const { flags, nodeSelectors } = commandLine;
  const options: ManifestOptions = {
    namespace: flags.text("namespace"),
    flavor: flags.text("k8s-flavor") as K8sFlavor | undefined,
    imageRepo: flags.text("image-repo"),
    version: flags.text("version"),
    secret: flags.text("secret"),
    collectMetrics: flags.on("collect-metrics"),
    pin: flags.on("pin") ? true : undefined,
    keep: flags.on("keep") ? true : undefined,
    refreshInterval: flags.text("refresh-interval"),
    ...wavesOptions(flags),
    metricsServiceType: flags.text("metrics-service-type") as MetricsServiceType | undefined,
    nodeSelector: nodeSelectors.length > 0 ? parseNodeSelector(nodeSelectors) : undefined,
    priorityClass: flags.text("priority-class"),
    criSocket: flags.text("cri-socket"),
    fetchFlags: fetchTuningOptions(flags),
    credentialProvider: credentialProviderOptions(flags),
    nodeUpdates: nodeUpdateOptions(flags),
  };
  // Unset options stay out, so `renderManifests` applies its defaults.
  for (const key of Object.keys(options) as (keyof ManifestOptions)[]) {
    if (options[key] === undefined) delete options[key];
  }
  return { kind: "render", name, options };
}

/** The flags given on the command line, by name without dashes (`--node-selector` apart). */
interface GivenFlags {
  /** The value of a flag that takes one, if given. */
  text(flag: string): string | undefined;
  /** Whether a boolean flag is on. */
  on(flag: string): boolean;
}

/** A command line cut into its flags, its `--node-selector` values and its other arguments. */
interface CommandLine {
  flags: GivenFlags;
  nodeSelectors: string[];
  positionals: string[];
}

/** Cuts the command line into flags and positionals; `"help"` as soon as `-h` is seen. */
function splitCommandLine(args: readonly string[]): CommandLine | "help" {
  const values = new Map<string, string | boolean>();
  const nodeSelectors: string[] = [];
  const positionals: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (arg === "-h") return "help";
    if (!arg.startsWith("-") || arg === "-") {
      positionals.push(arg);
      continue;
    }
    const { flag, value, next } = readFlag(args, i);
    i = next;
    if (flag === "node-selector") {
      nodeSelectors.push(value as string);
      continue;
    }
    if (values.has(flag)) {
      throw new DeployInputError(`--${flag} is given twice; give it once.`);
    }
    values.set(flag, value);
  }
  const flags: GivenFlags = {
    text: (flag) => values.get(flag) as string | undefined,
    on: (flag) => values.get(flag) === true,
  };
  return { flags, nodeSelectors, positionals };
}

/**
 * Reads the flag at `args[i]` and its value: `=value` inline, or the next argument when the flag
 * takes one. `next` is the index of the last argument read.
 */
function readFlag(
  args: readonly string[],
  i: number,
): { flag: string; value: string | boolean; next: number } {
  const arg = args[i];
  const body = arg.replace(/^--?/, "");
  const eq = body.indexOf("=");
  const flag = eq === -1 ? body : body.slice(0, eq);
  const inline = eq === -1 ? undefined : body.slice(eq + 1);
  const spec = Object.hasOwn(DEPLOY_FLAGS, flag) ? DEPLOY_FLAGS[flag] : undefined;
  if (spec === undefined) {
    throw new DeployInputError(`Unknown flag "${arg}"; ${HELP}.`);
  }
  if (spec.type === "boolean") {
    if (inline === undefined || inline === "true") return { flag, value: true, next: i };
    if (inline === "false") return { flag, value: false, next: i };
    throw new DeployInputError(`--${flag} takes no value (or =true, =false), not "${inline}".`);
  }
  if (inline !== undefined) return { flag, value: inline, next: i };
  if (i + 1 < args.length && !args[i + 1].startsWith("-")) {
    return { flag, value: args[i + 1], next: i + 1 };
  }
  throw new DeployInputError(
    `--${flag} needs a value, like --${flag} ${example(flag, spec)}; ${HELP}.`,
  );
}

/** `--waves` and its tuning; the numbers are checked for range by `renderManifests`. */
function wavesOptions(
  flags: GivenFlags,
): Pick<ManifestOptions, "waves" | "firstWave" | "fanout" | "maxNodesPulling"> {
  return {
    waves: flags.on("waves"),
    firstWave: wholeNumber(flags.text("first-wave"), "first-wave"),
    fanout: wholeNumber(flags.text("fanout"), "fanout"),
    maxNodesPulling: wholeNumber(flags.text("max-nodes-pulling"), "max-nodes-pulling"),
  };
}

/** The `fetch` tuning flags given, trimmed; checked by `renderManifests`. */
function fetchTuningOptions(flags: GivenFlags): FetchTuning {
  const fetchFlags: FetchTuning = {};
  for (const flag of Object.keys(FETCH_TUNING_DEFAULTS) as FetchTuningFlag[]) {
    const value = flags.text(flag);
    if (value !== undefined) fetchFlags[flag] = value.trim();
  }
  return fetchFlags;
}

/** Node labels and the startup taint, if any of their flags is given. */
function nodeUpdateOptions(flags: GivenFlags): NodeUpdateOptions | undefined {
  const labelPrefix = flags.text("node-label-prefix");
  const startupTaint = flags.text("remove-startup-taint");
  if (!flags.on("label-nodes") && labelPrefix === undefined && startupTaint === undefined) {
    return undefined;
  }
  return {
    labelNodes: flags.on("label-nodes"),
    ...(labelPrefix === undefined ? {} : { labelPrefix }),
    ...(startupTaint === undefined ? {} : { startupTaint }),
  };
}

function credentialProviderOptions(flags: GivenFlags): CredentialProviderOptions | undefined {
  const kind = flags.text("credential-provider");
  const configFile = flags.text("credential-provider-config");
  const binDir = flags.text("credential-provider-bin-dir");
  if (kind === undefined) {
    if (configFile !== undefined || binDir !== undefined) {
      throw new DeployInputError(
        "--credential-provider-config and --credential-provider-bin-dir need " +
          "--credential-provider (gke, eks, aks, or custom).",
      );
    }
    return undefined;
  }
  return {
    kind: kind as CredentialProviderKind,
    ...(configFile === undefined ? {} : { configFile }),
    ...(binDir === undefined ? {} : { binDir }),
  };
}

function wholeNumber(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text.trim())) {
    throw new DeployInputError(`--${flag} must be a whole number, not "${text}".`);
  }
  return Number(text);
}

function example(flag: string, spec: FlagSpec): string {
  if (flag === "k8s-flavor") return "ocp";
  if (flag === "node-selector") return "kubernetes.io/arch=amd64";
  if (spec.value === "duration") return spec.default ?? "5m";
  return spec.default?.split(",")[0] ?? "my-name";
}

function onlyName(positionals: string[]): string {
  if (positionals.length === 0) {
    throw new DeployInputError(
      'The instance name is missing: give it as the argument, like "deploy.ts my-images"; it is ' +
        "also the name of the ConfigMap with images.txt.",
    );
  }
  if (positionals.length === 1) return positionals[0];
  const [name, version, flavor] = positionals;
  const looksOld = /^v?\d/.test(version) &&
    (flavor === undefined || (K8S_FLAVORS as readonly string[]).includes(flavor));
  if (positionals.length <= 3 && looksOld) {
    // The original's README once showed `deploy my-images v0.2.2 vanilla`.
    const flags = [
      `--version ${version}`,
      ...(flavor === undefined ? [] : [`--k8s-flavor ${flavor}`]),
    ].join(" ");
    throw new DeployInputError(
      `deploy takes one argument, the instance name, and got ${positionals.length} ` +
        `(${positionals.join(" ")}); ` +
        `${flavor === undefined ? "the version is a flag" : "the version and flavor are flags"} ` +
        `now: "${name} ${flags}".`,
    );
  }
  throw new DeployInputError(
    `deploy takes one argument, the instance name, and got ${positionals.length} ` +
      `(${positionals.join(" ")}); ${HELP}.`,
  );
}

/** Parses `key=value,key2=value2` (each `--node-selector` given) into labels. */
function parseNodeSelector(texts: string[]): Record<string, string> {
  const selector: Record<string, string> = {};
  for (const text of texts) {
    for (const pair of text.split(",")) {
      const eq = pair.indexOf("=");
      if (eq <= 0) {
        throw new DeployInputError(
          `--node-selector "${text}" is malformed: write key=value pairs separated by commas, ` +
            `like kubernetes.io/arch=amd64,node-role.kubernetes.io/worker=.`,
        );
      }
      const key = pair.slice(0, eq).trim();
      if (Object.hasOwn(selector, key)) {
        throw new DeployInputError(`--node-selector gives "${key}" twice; give each label once.`);
      }
      selector[key] = pair.slice(eq + 1).trim();
    }
  }
  return selector;
}
