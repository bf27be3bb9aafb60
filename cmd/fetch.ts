/**
 * `image-prefetcher fetch`: flags and wiring. The work is done by `lib/pull/run_fetch.ts`; the
 * metrics server is wired in as its reporter (`lib/metrics/client/reporter.ts`).
 *
 * @module
 */
import { ExitCode, InterruptedError, InvalidInputError } from "../lib/core/exit_codes.ts";
import { type LogFormat, Logger } from "../lib/core/log.ts";
import type { RetryScheduleOptions } from "../lib/core/retry_schedule.ts";
import { tokenFileSource } from "../lib/core/token_file.ts";
// Only types from the pulling code: `keep` reads this module's flag table in a process that
// must not load gRPC (see `runFetchInvocation`, which imports it when a run starts).
import type { FetchConfig, FetchContext } from "../lib/pull/run_fetch.ts";
import type { PullPolicy } from "../lib/pull/scheduler.ts";
import { isPinOwner } from "../lib/runtime/pin_labels.ts";
import { dropRunPermission } from "../lib/core/run_permission.ts";
import { isLabelKey } from "../lib/deploy/k8s_names.ts";
import { SERVICE_ACCOUNT_DIR } from "../lib/kube/in_cluster.ts";
import { parseTaint } from "../lib/kube/startup_taint.ts";
import {
  type FlagSpec,
  helpRows,
  orExitOnInvalidInput,
  type ParsedFlags,
  parseFlags,
} from "./_flags.ts";

/** Every flag of `fetch`, with its default and its line of `--help`. */
export const FETCH_FLAGS = {
  "cri-socket": {
    type: "string",
    default: "/run/containerd/containerd.sock",
    value: "path",
    help: "The container runtime's CRI socket (CRI-O: /var/run/crio/crio.sock).",
  },
  "image-list-file": {
    type: "string",
    value: "path",
    help: "File with one image per line; '#' comments and blank lines are ignored.",
  },
  "docker-config": {
    type: "string",
    value: "path",
    help: "A .dockerconfigjson with registry credentials, matched to images like the kubelet does.",
  },
  "image-credential-provider-config": {
    type: "string",
    value: "path",
    help: "The node's kubelet CredentialProviderConfig (kubelet.config.k8s.io/v1, YAML or JSON); " +
      "its plugins' credentials are tried after the docker config's.",
  },
  "image-credential-provider-bin-dir": {
    type: "string",
    value: "path",
    help: "Directory of the credential provider plugin executables.",
  },
  "image-credential-provider-timeout": {
    type: "string",
    default: "1m",
    value: "duration",
    help: "Kill a credential provider plugin call that has not answered in this long.",
  },
  "node-label": {
    type: "string",
    value: "prefix/instance",
    help: "After the run, label this node <prefix/instance>=succeeded (every image is on it) or " +
      "=failed, like image-prefetcher.stackrox.io/my-images; needs patch on nodes.",
  },
  "remove-startup-taint": {
    type: "string",
    value: "key[=value]:effect",
    help: "After the run, remove this taint from this node (kept after an interrupted run, and " +
      "with --strict when an image is missing); needs get and patch on nodes.",
  },
  "service-account-dir": {
    type: "string",
    default: SERVICE_ACCOUNT_DIR,
    value: "path",
    help: "Where the service account token and ca.crt for the Kubernetes API are.",
  },
  "metrics-endpoint": {
    type: "string",
    value: "host:port",
    help: "Where an aggregate-metrics server listens for pull attempts.",
  },
  "metrics-token-file": {
    type: "string",
    value: "path",
    help: "File with the bearer token the metrics server requires (in a pod: a projected " +
      "service-account token), read again before every call, so a rotated token is sent.",
  },
  waves: {
    type: "boolean",
    help: "Ask the server at --metrics-endpoint (aggregate-metrics --waves) before each pull, " +
      "so the registry serves each layer once however many nodes pull.",
  },
  "waves-max-wait": {
    type: "string",
    default: "30s",
    value: "duration",
    help: "With --waves: the longest an image waits while the coordinator does not answer; " +
      "then it is pulled anyway.",
  },
  "image-list-timeout": {
    type: "string",
    default: "1m",
    value: "duration",
    help: "How long to wait for the image list file to appear.",
  },
  "cri-connect-timeout": {
    type: "string",
    default: "1m",
    value: "duration",
    help: "How long to wait for the runtime to answer on its socket.",
  },
  "initial-pull-attempt-timeout": {
    type: "string",
    default: "30s",
    value: "duration",
    help: "Time allowed to the first pull attempt of an image; doubled for each next attempt.",
  },
  "max-pull-attempt-timeout": {
    type: "string",
    default: "5m",
    value: "duration",
    help: "The most time any one pull attempt is allowed.",
  },
  "overall-timeout": {
    type: "string",
    default: "20m",
    value: "duration",
    help: "Nothing runs longer than this; unfinished images are reported failed.",
  },
  "initial-pull-attempt-delay": {
    type: "string",
    default: "1s",
    value: "duration",
    help: "Wait after a first failed attempt; doubled (with ±20% jitter) after each next one.",
  },
  "max-pull-attempt-delay": {
    type: "string",
    default: "10m",
    value: "duration",
    help: "The longest wait between two attempts.",
  },
  "max-parallel": {
    type: "string",
    default: "0",
    value: "n",
    help: "How many images are pulled at once; 0 pulls them all at once.",
  },
  "stall-timeout": {
    type: "string",
    default: "10s",
    value: "duration",
    help: "Cut and retry an attempt that has received no bytes for this long (containerd only).",
  },
  progress: {
    type: "string",
    default: "auto",
    value: "auto|off",
    help: "Watch each pull's bytes where the runtime shows them (auto), or use only the " +
      "wall-clock attempt timeouts (off).",
  },
  "progress-interval": {
    type: "string",
    default: "10s",
    value: "duration",
    help: "How often a downloading image logs a progress line.",
  },
  "pull-policy": {
    type: "string",
    value: "Always|IfNotPresent",
    help:
      "Pull images already on the node again (Always) or not (IfNotPresent). By default, as in " +
      "Kubernetes: IfNotPresent for digests and tags other than latest, Always for latest.",
  },
  "node-name": {
    type: "string",
    value: "name",
    help: "This node's name in logs and metrics (default: $NODE_NAME, then the host name).",
  },
  "log-format": {
    type: "string",
    default: "text",
    value: "text|json",
    help: "Logs (standard error) and summary (standard output) as text or JSON lines.",
  },
  pin: {
    type: "boolean",
    help: "Pin the images on the node so the kubelet's image garbage collection keeps them " +
      "(containerd 1.7 or newer; other runtimes: one warning).",
  },
  "pin-owner": {
    type: "string",
    default: "image-prefetcher",
    value: "name",
    help: "With --pin: the name recorded on each pin (a label on the image), so that keep " +
      "releases only its own pins; deploy.ts sets the instance name.",
  },
  strict: {
    type: "boolean",
    help: "Exit 1 when any image is not on the node at the end (default: report and exit 0).",
  },
  debug: { type: "boolean", help: "Log more detail (never changes behaviour)." },
  help: { type: "boolean", help: "Show this help." },
} as const satisfies Record<string, FlagSpec>;

/** The help text of `fetch`. */
export function fetchHelp(): string {
  return [
    "Usage: image-prefetcher fetch [flags] [image ...]",
    "",
    "Pulls every image of the list (and of the arguments) onto this node through the container",
    "runtime's CRI socket, all in parallel, retrying stalled or failed pulls with growing timeouts.",
    "",
    "Flags:",
    ...helpRows(FETCH_FLAGS, 42),
    "",
    "Durations are written like 30s, 5m, 1h30m.",
    "",
    "Exit status:",
    "  0    every image is on the node (or some failed, without --strict)",
    "  1    some images failed, with --strict",
    "  2    bad invocation: a flag, the image list, a line of it, or the docker config",
    "  3    the container runtime did not answer on its socket within --cri-connect-timeout",
    "  4    --remove-startup-taint was due but the taint could not be removed (the kubelet",
    "       restarts the container, which tries again)",
    "  130  stopped by SIGINT; 143 stopped by SIGTERM (the summary is printed first)",
  ].join("\n");
}

/** What the command line asks for: a run, or the help text. */
export type FetchInvocation =
  | {
    kind: "run";
    config: FetchConfig;
    /** `host:port` of the metrics server, if any. */
    metricsEndpoint?: string;
    /** File holding the bearer token the metrics server requires, if any. */
    metricsTokenFile?: string;
    /** Ask the coordinator at `metricsEndpoint` before each pull, waiting at most `maxWaitMs`. */
    waves?: { maxWaitMs: number };
    /** Where the service account token and CA are (node updates, Events). */
    serviceAccountDir: string;
    logFormat: LogFormat;
    debug: boolean;
  }
  | { kind: "help" };

type FetchFlags = ParsedFlags<typeof FETCH_FLAGS>;

/**
 * Parses `fetch`'s arguments. Throws {@linkcode InvalidInputError} naming the flag and the fix.
 * `env` supplies `NODE_NAME` and the host name fallback.
 */
export function parseFetchArgs(
  args: string[],
  env: { nodeName?: string; hostname: () => string } = {
    nodeName: Deno.env.get("NODE_NAME"),
    hostname: () => Deno.hostname(),
  },
): FetchInvocation {
  const flags = parseFlags("fetch", FETCH_FLAGS, args, { positionals: true });
  if (flags.boolean("help")) return { kind: "help" };
  const schedule = retrySchedule(flags);
  if (flags.duration("stall-timeout") <= 0 || flags.duration("progress-interval") <= 0) {
    throw new InvalidInputError("--stall-timeout and --progress-interval must be longer than 0s.");
  }
  const credentialProviders = pluginSettings(flags);
  const nodeUpdates = nodeUpdateSettings(flags);
  return {
    kind: "run",
    logFormat: flags.oneOf("log-format", ["text", "json"])!,
    debug: flags.boolean("debug"),
    metricsEndpoint: metricsEndpoint(flags),
    metricsTokenFile: flags.string("metrics-token-file"),
    waves: wavesSettings(flags),
    serviceAccountDir: flags.string("service-account-dir")!,
    config: {
      criSocket: flags.string("cri-socket")!,
      imageListFile: flags.string("image-list-file"),
      images: flags.positionals,
      dockerConfig: flags.string("docker-config"),
      imageListTimeoutMs: flags.duration("image-list-timeout"),
      criConnectTimeoutMs: flags.duration("cri-connect-timeout"),
      credentialProviders,
      nodeUpdates,
      schedule,
      overallTimeoutMs: flags.duration("overall-timeout"),
      progress: flags.oneOf("progress", ["auto", "off"])!,
      stallTimeoutMs: flags.duration("stall-timeout"),
      progressIntervalMs: flags.duration("progress-interval"),
      maxParallel: flags.wholeNumber("max-parallel", 0, 1_000_000, " (0 for no bound)"),
      pullPolicy: flags.oneOf<PullPolicy>(
        "pull-policy",
        ["Always", "IfNotPresent"],
        "; leave it out for Kubernetes' default",
      ),
      nodeName: flags.string("node-name") || env.nodeName || env.hostname(),
      strict: flags.boolean("strict"),
      pin: flags.boolean("pin"),
      pinOwner: pinOwner(flags),
    },
  };
}

/** The attempt timeouts and delays, each initial value no longer than its maximum. */
function retrySchedule(flags: FetchFlags): RetryScheduleOptions {
  const pairs = [
    ["initial-pull-attempt-timeout", "max-pull-attempt-timeout"],
    ["initial-pull-attempt-delay", "max-pull-attempt-delay"],
  ] as const;
  for (const [initial, max] of pairs) {
    if (flags.duration(initial) > flags.duration(max)) {
      throw new InvalidInputError(
        `--${initial} (${flags.string(initial)}) is longer than --${max} ` +
          `(${flags.string(max)}); raise --${max} or lower --${initial}.`,
      );
    }
  }
  if (flags.duration("initial-pull-attempt-timeout") <= 0) {
    throw new InvalidInputError("--initial-pull-attempt-timeout must be longer than 0s, like 30s.");
  }
  return {
    initialAttemptTimeoutMs: flags.duration("initial-pull-attempt-timeout"),
    maxAttemptTimeoutMs: flags.duration("max-pull-attempt-timeout"),
    initialDelayMs: flags.duration("initial-pull-attempt-delay"),
    maxDelayMs: flags.duration("max-pull-attempt-delay"),
  };
}

/** `--pin-owner`, a DNS label. */
function pinOwner(flags: FetchFlags): string {
  const owner = flags.string("pin-owner")!;
  if (isPinOwner(owner)) return owner;
  throw new InvalidInputError(
    `--pin-owner must be a DNS label (lower-case letters, digits and '-', at most 63), like ` +
      `my-images, not "${owner}".`,
  );
}

/** `--metrics-endpoint`, checked to be `host:port` or `[ipv6]:port`. */
function metricsEndpoint(flags: FetchFlags): string | undefined {
  const endpoint = flags.string("metrics-endpoint");
  if (endpoint === undefined || /^[^\s/:]+:\d{1,5}$|^\[[0-9a-fA-F:.]+\]:\d{1,5}$/.test(endpoint)) {
    return endpoint;
  }
  throw new InvalidInputError(
    `--metrics-endpoint must be host:port, like my-images-metrics:8443, not "${endpoint}".`,
  );
}

/** `--waves` and its tuning, which needs `--waves`, which needs `--metrics-endpoint`. */
function wavesSettings(flags: FetchFlags): { maxWaitMs: number } | undefined {
  if (!flags.boolean("waves")) {
    if (!flags.given("waves-max-wait")) return undefined;
    throw new InvalidInputError(
      "--waves-max-wait tunes --waves: add --waves, or leave --waves-max-wait out.",
    );
  }
  if (flags.string("metrics-endpoint") === undefined) {
    throw new InvalidInputError(
      "--waves asks the aggregate-metrics server: add --metrics-endpoint host:port, or leave " +
        "--waves out.",
    );
  }
  const maxWaitMs = flags.duration("waves-max-wait");
  if (maxWaitMs <= 0) {
    throw new InvalidInputError("--waves-max-wait must be longer than 0s, like 30s.");
  }
  return { maxWaitMs };
}

/** The credential provider flags, which go together. */
function pluginSettings(flags: FetchFlags): FetchConfig["credentialProviders"] {
  const configPath = flags.string("image-credential-provider-config");
  const binDir = flags.string("image-credential-provider-bin-dir");
  if (configPath === undefined && binDir === undefined) return undefined;
  if (configPath === undefined || binDir === undefined) {
    throw new InvalidInputError(
      "--image-credential-provider-config and --image-credential-provider-bin-dir go together; " +
        "pass both (the kubelet's CredentialProviderConfig and its plugin directory) or neither.",
    );
  }
  const timeoutMs = flags.duration("image-credential-provider-timeout");
  if (timeoutMs <= 0) {
    throw new InvalidInputError(
      "--image-credential-provider-timeout must be longer than 0s, like 1m.",
    );
  }
  return { configPath, binDir, timeoutMs };
}

/** The node label and startup taint flags. */
function nodeUpdateSettings(flags: FetchFlags): FetchConfig["nodeUpdates"] {
  const labelKey = flags.string("node-label");
  const taintText = flags.string("remove-startup-taint");
  if (labelKey === undefined && taintText === undefined) return undefined;
  if (labelKey !== undefined && !isLabelKey(labelKey)) {
    throw new InvalidInputError(
      `--node-label "${labelKey}" is not a valid label key; write <prefix>/<instance>, like ` +
        "image-prefetcher.stackrox.io/my-images.",
    );
  }
  const startupTaint = taintText === undefined ? undefined : parseTaint(taintText);
  if (typeof startupTaint === "string") {
    throw new InvalidInputError(`--remove-startup-taint ${startupTaint}.`);
  }
  return { labelKey, startupTaint, serviceAccountDir: flags.string("service-account-dir") };
}

/** Runs `fetch` with the process's arguments and exits with its status. */
export async function main(args: string[]): Promise<never> {
  const invocation = await orExitOnInvalidInput("fetch", () => parseFetchArgs(args));
  if (invocation.kind === "help") {
    console.log(fetchHelp());
    Deno.exit(ExitCode.Ok);
  }
  // Only credential provider plugins need to start programs; without them, give the right up.
  if (!invocation.config.credentialProviders) dropRunPermission();
  const interrupt = new AbortController();
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(signal, () => interrupt.abort(new InterruptedError(signal)));
  }
  Deno.exit(await runFetchInvocation(invocation, interrupt.signal));
}

/** What a command adds to a run besides what `fetch` wires in. */
export interface RunExtras {
  /** Runs after the pulls and pins (see {@linkcode FetchContext.afterPulls}). */
  afterPulls?: (logger: Logger) => FetchContext["afterPulls"];
}

/**
 * Runs a parsed invocation: reads the metrics token, wires the metrics reporter and the waves
 * gate, and returns the run's exit status. `keep` runs each of its cycles through it.
 */
export async function runFetchInvocation(
  invocation: Extract<FetchInvocation, { kind: "run" }>,
  signal: AbortSignal,
  extras: RunExtras = {},
): Promise<number> {
  const logger = new Logger({ format: invocation.logFormat, debug: invocation.debug });
  const { metricsEndpoint: endpoint, metricsTokenFile, waves, config } = invocation;
  let token: (() => string) | undefined;
  try {
    token = metricsTokenFile
      ? await tokenFileSource(metricsTokenFile, "--metrics-token-file")
      : undefined;
  } catch (error) {
    // Logged like every other problem of a run, in the run's --log-format.
    if (!(error instanceof InvalidInputError)) throw error;
    logger.error(error.message);
    return ExitCode.InvalidInput;
  }
  const [{ runFetch }, { openMetricsReporter }, { openNodeWaves }] = await Promise.all([
    import("../lib/pull/run_fetch.ts"),
    import("../lib/metrics/client/reporter.ts"),
    import("../lib/waves/client/node_waves.ts"),
  ]);
  const node = config.nodeName;
  return await runFetch(config, {
    logger,
    summaryFormat: invocation.logFormat,
    writeSummary: (text) => console.log(text),
    signal,
    openReporter: endpoint ? openMetricsReporter({ endpoint, token, node, logger }) : undefined,
    openGate: endpoint && waves
      ? ({ renewWithoutProgress }) =>
        openNodeWaves({
          endpoint,
          token,
          node,
          maxWaitMs: waves.maxWaitMs,
          renewWithoutProgress,
          logger,
        })
      : undefined,
    afterPulls: async (run) => {
      await extras.afterPulls?.(logger)?.(run);
      await publishEvents(
        run.results,
        { config, serviceAccountDir: invocation.serviceAccountDir },
        { logger, signal: run.signal },
      );
    },
  });
}

/**
 * Failed images as Kubernetes Events on this pod (`lib/kube/events.ts`), which the DaemonSet
 * names through the downward API (`POD_NAME`, `POD_NAMESPACE`, `POD_UID`).
 */
async function publishEvents(
  results: { image: string; status: string; attempts: number }[],
  { config, serviceAccountDir }: { config: FetchConfig; serviceAccountDir: string },
  { logger, signal }: { logger: Logger; signal: AbortSignal },
): Promise<void> {
  const { publishRunEvents } = await import("../lib/kube/events.ts");
  const name = Deno.env.get("POD_NAME");
  const namespace = Deno.env.get("POD_NAMESPACE") ||
    await Deno.readTextFile(`${serviceAccountDir}/namespace`).then((t) => t.trim(), () => "");
  const uid = Deno.env.get("POD_UID") || undefined;
  await publishRunEvents(results, {
    node: config.nodeName,
    pod: name && namespace ? { name, namespace, uid } : undefined,
    serviceAccountDir,
    logger,
    signal,
  });
}
