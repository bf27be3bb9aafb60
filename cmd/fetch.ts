/**
 * `image-prefetcher fetch`: flags and wiring. The work is done by `lib/fetch.ts`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { parseDuration } from "../lib/core/duration.ts";
import { ExitCode, InterruptedError, InvalidInputError } from "../lib/core/exit_codes.ts";
import { type FetchConfig, runFetch } from "../lib/pull/run_fetch.ts";
import { type LogFormat, Logger } from "../lib/core/log.ts";
import type { PullPolicy } from "../lib/pull/scheduler.ts";

interface FlagSpec {
  type: "string" | "boolean";
  default?: string;
  value?: string;
  help: string;
}

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
  "metrics-endpoint": {
    type: "string",
    value: "host:port",
    help: "Where an aggregate-metrics server listens for pull attempts.",
  },
  "metrics-token-file": {
    type: "string",
    value: "path",
    help: "File with the bearer token the metrics server requires, if it requires one.",
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
  strict: {
    type: "boolean",
    help: "Exit 1 when any image is not on the node at the end (default: report and exit 0).",
  },
  debug: { type: "boolean", help: "Log more detail (never changes behaviour)." },
  help: { type: "boolean", help: "Show this help." },
} as const satisfies Record<string, FlagSpec>;

/** The help text of `fetch`. */
export function fetchHelp(): string {
  const rows = Object.entries(FETCH_FLAGS as Record<string, FlagSpec>).map(([name, spec]) => {
    const left = `  --${name}${spec.value ? ` ${spec.value}` : ""}`;
    const def = spec.default !== undefined ? ` (default ${spec.default})` : "";
    return `${left.padEnd(42)}${spec.help}${def}`;
  });
  return [
    "Usage: image-prefetcher fetch [flags] [image ...]",
    "",
    "Pulls every image of the list (and of the arguments) onto this node through the container",
    "runtime's CRI socket, all in parallel, retrying stalled or failed pulls with growing timeouts.",
    "",
    "Flags:",
    ...rows,
    "",
    "Durations are written like 30s, 5m, 1h30m.",
    "",
    "Exit status:",
    "  0    every image is on the node (or some failed, without --strict)",
    "  1    some images failed, with --strict",
    "  2    bad invocation: a flag, the image list, a line of it, or the docker config",
    "  3    the container runtime did not answer on its socket within --cri-connect-timeout",
    "  130  stopped by SIGINT; 143 stopped by SIGTERM (the summary is printed first)",
  ].join("\n");
}

/** What the command line asks for: a run, or the help text. */
export type FetchInvocation =
  | { kind: "run"; config: FetchConfig; logFormat: LogFormat; debug: boolean }
  | { kind: "help" };

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
  let parsed;
  try {
    parsed = parseArgs({ args, options: FETCH_FLAGS, allowPositionals: true, strict: true });
  } catch (error) {
    throw new InvalidInputError(
      `${
        (error as Error).message.replace(/\.$/, "")
      }; run "image-prefetcher fetch --help" for the flags.`,
    );
  }
  const v = parsed.values;
  if (v.help) return { kind: "help" };
  const str = (name: keyof typeof FETCH_FLAGS): string | undefined => {
    const value = v[name] as string | undefined;
    return value ?? (FETCH_FLAGS[name] as FlagSpec).default;
  };
  const duration = (name: keyof typeof FETCH_FLAGS): number => {
    try {
      return parseDuration(str(name)!);
    } catch (error) {
      throw new InvalidInputError(`--${name}: ${(error as Error).message}`);
    }
  };
  const maxParallelText = str("max-parallel")!;
  if (!/^\d+$/.test(maxParallelText)) {
    throw new InvalidInputError(
      `--max-parallel must be a whole number (0 for no bound), not "${maxParallelText}".`,
    );
  }
  const pullPolicy = str("pull-policy");
  if (pullPolicy !== undefined && pullPolicy !== "Always" && pullPolicy !== "IfNotPresent") {
    throw new InvalidInputError(
      `--pull-policy must be Always or IfNotPresent, not "${pullPolicy}"; leave it out for ` +
        "Kubernetes' default.",
    );
  }
  const progress = str("progress");
  if (progress !== "auto" && progress !== "off") {
    throw new InvalidInputError(`--progress must be auto or off, not "${progress}".`);
  }
  const logFormat = str("log-format");
  if (logFormat !== "text" && logFormat !== "json") {
    throw new InvalidInputError(`--log-format must be text or json, not "${logFormat}".`);
  }
  const metricsEndpoint = str("metrics-endpoint");
  if (
    metricsEndpoint !== undefined &&
    !/^[^\s/:]+:\d{1,5}$|^\[[0-9a-fA-F:.]+\]:\d{1,5}$/.test(metricsEndpoint)
  ) {
    throw new InvalidInputError(
      `--metrics-endpoint must be host:port, like my-images-metrics:8443, not "${metricsEndpoint}".`,
    );
  }
  if (v.waves && metricsEndpoint === undefined) {
    throw new InvalidInputError(
      "--waves asks the aggregate-metrics server: add --metrics-endpoint host:port, or leave " +
        "--waves out.",
    );
  }
  if (!v.waves && args.some((a) => a.startsWith("--waves-max-wait"))) {
    throw new InvalidInputError(
      "--waves-max-wait tunes --waves: add --waves, or leave --waves-max-wait out.",
    );
  }
  if (v.waves && duration("waves-max-wait") <= 0) {
    throw new InvalidInputError("--waves-max-wait must be longer than 0s, like 30s.");
  }
  const schedule = {
    initialAttemptTimeoutMs: duration("initial-pull-attempt-timeout"),
    maxAttemptTimeoutMs: duration("max-pull-attempt-timeout"),
    initialDelayMs: duration("initial-pull-attempt-delay"),
    maxDelayMs: duration("max-pull-attempt-delay"),
  };
  for (
    const [initial, max] of [["initial-pull-attempt-timeout", "max-pull-attempt-timeout"], [
      "initial-pull-attempt-delay",
      "max-pull-attempt-delay",
    ]] as const
  ) {
    if (duration(initial) > duration(max)) {
      throw new InvalidInputError(
        `--${initial} (${str(initial)}) is longer than --${max} (${
          str(max)
        }); raise --${max} or lower --${initial}.`,
      );
    }
  }
  if (duration("stall-timeout") <= 0 || duration("progress-interval") <= 0) {
    throw new InvalidInputError("--stall-timeout and --progress-interval must be longer than 0s.");
  }
  if (schedule.initialAttemptTimeoutMs <= 0) {
    throw new InvalidInputError("--initial-pull-attempt-timeout must be longer than 0s, like 30s.");
  }
  return {
    kind: "run",
    logFormat,
    debug: v.debug ?? false,
    config: {
      criSocket: str("cri-socket")!,
      imageListFile: str("image-list-file"),
      images: parsed.positionals,
      dockerConfig: str("docker-config"),
      metricsEndpoint,
      metricsTokenFile: str("metrics-token-file"),
      imageListTimeoutMs: duration("image-list-timeout"),
      criConnectTimeoutMs: duration("cri-connect-timeout"),
      schedule,
      overallTimeoutMs: duration("overall-timeout"),
      progress,
      stallTimeoutMs: duration("stall-timeout"),
      progressIntervalMs: duration("progress-interval"),
      maxParallel: Number(maxParallelText),
      pullPolicy: pullPolicy as PullPolicy | undefined,
      nodeName: str("node-name") || env.nodeName || env.hostname(),
      strict: v.strict ?? false,
      ...(v.waves ? { waves: { maxWaitMs: duration("waves-max-wait") } } : {}),
    },
  };
}

/** Runs `fetch` with the process's arguments and exits with its status. */
export async function main(args: string[]): Promise<never> {
  let invocation: FetchInvocation;
  try {
    invocation = parseFetchArgs(args);
  } catch (error) {
    if (!(error instanceof InvalidInputError)) throw error;
    console.error(`image-prefetcher fetch: ${error.message}`);
    Deno.exit(ExitCode.InvalidInput);
  }
  if (invocation.kind === "help") {
    console.log(fetchHelp());
    Deno.exit(ExitCode.Ok);
  }
  const interrupt = new AbortController();
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(signal, () => interrupt.abort(new InterruptedError(signal)));
  }
  const logger = new Logger({ format: invocation.logFormat, debug: invocation.debug });
  const code = await runFetch(invocation.config, {
    logger,
    summaryFormat: invocation.logFormat,
    writeSummary: (text) => console.log(text),
    signal: interrupt.signal,
  });
  Deno.exit(code);
}
