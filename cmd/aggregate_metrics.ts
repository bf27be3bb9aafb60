/**
 * `image-prefetcher aggregate-metrics`: flags and wiring of the metrics server. The work is done
 * by `lib/metrics/server/run_aggregate_metrics.ts`.
 *
 * @module
 */
import { ExitCode, InvalidInputError } from "../lib/core/exit_codes.ts";
import { type LogFormat, Logger } from "../lib/core/log.ts";
import {
  type AggregateMetricsConfig,
  runAggregateMetrics,
} from "../lib/metrics/server/run_aggregate_metrics.ts";
import type { WaveCoordinatorOptions } from "../lib/waves/coordinator.ts";
import { connectKubernetesAuth, type KubernetesAuthSettings } from "../lib/auth/kubernetes_auth.ts";
import { SERVICE_ACCOUNT_DIR } from "../lib/kube/in_cluster.ts";
import type { ServerAuth } from "../lib/core/bearer_token.ts";
import {
  type FlagSpec,
  helpRows,
  orExitOnInvalidInput,
  type ParsedFlags,
  parseFlags,
} from "./_flags.ts";

/** Every flag of `aggregate-metrics`, with its default and its line of `--help`. */
export const AGGREGATE_METRICS_FLAGS = {
  "grpc-port": {
    type: "string",
    default: "8443",
    value: "port",
    help: "Where nodes stream pull attempts (gRPC /Metrics/Submit), on all interfaces.",
  },
  "http-port": {
    type: "string",
    default: "8080",
    value: "port",
    help: "Where /, /summary, /metrics and /healthz are served, on all interfaces.",
  },
  "local-http-port": {
    type: "string",
    value: "port",
    help: "Also serve the views on 127.0.0.1 only, without any credential: people reach it with " +
      "kubectl port-forward, which RBAC guards (off unless given).",
  },
  "max-results": {
    type: "string",
    default: "1000000",
    value: "n",
    help: "The most attempts of the nodes' current runs kept in memory (about 600 B each); " +
      "earlier runs are kept as counts. More are refused.",
  },
  "max-nodes": {
    type: "string",
    default: "20000",
    value: "n",
    help: "The most distinct nodes tracked; past it one silent for --node-gone-after makes " +
      "room, else new ones are refused.",
  },
  "max-images": {
    type: "string",
    default: "5000",
    value: "n",
    help: "The most distinct images tracked; past it one no node lists makes room, else new " +
      "ones are refused.",
  },
  "node-gone-after": {
    type: "string",
    default: "15m",
    value: "duration",
    help: "A node with images pending that sent nothing for this long shows as gone, not pending.",
  },
  "state-file": {
    type: "string",
    value: "path",
    help: "Also write accepted attempts to this file and read them back at start, so a restart " +
      "loses nothing (in a pod: a file on an emptyDir volume).",
  },
  "token-file": {
    type: "string",
    value: "path",
    help: "A file holding a shared bearer token that submits and reads must present in their " +
      "Authorization header; for servers outside Kubernetes (every holder may speak for any node).",
  },
  "node-service-account": {
    type: "string",
    value: "namespace/name",
    help: "Authenticate with the Kubernetes API: a node is the node named by its projected token " +
      "of this ServiceAccount (TokenReview); reads need a token RBAC lets get the path.",
  },
  "token-audience": {
    type: "string",
    default: "image-prefetcher",
    value: "audience",
    help: "With --node-service-account: the audience the nodes' projected tokens must be for.",
  },
  "service-account-dir": {
    type: "string",
    default: SERVICE_ACCOUNT_DIR,
    value: "path",
    help: "With --node-service-account: where this server's own token and ca.crt are.",
  },
  waves: {
    type: "boolean",
    help: "Coordinate cluster-wide waves: nodes running fetch --waves ask before each pull " +
      "(gRPC /Waves/Admit on --grpc-port).",
  },
  "first-wave": {
    type: "string",
    default: "1",
    value: "n",
    help: "With --waves: how many nodes pull an image while no node has it yet.",
  },
  fanout: {
    type: "string",
    default: "4",
    value: "n",
    help: "With --waves: once k nodes have an image, up to k x n more may pull it at once.",
  },
  "max-nodes-pulling": {
    type: "string",
    default: "0",
    value: "n",
    help: "With --waves: how many nodes may pull at once in the whole cluster; 0 for no bound.",
  },
  "lease-timeout": {
    type: "string",
    default: "30s",
    value: "duration",
    help: "With --waves: a node that shows no progress for this long loses its slot.",
  },
  "log-format": {
    type: "string",
    default: "text",
    value: "text|json",
    help: "Logs (standard error) as text or JSON lines.",
  },
  debug: { type: "boolean", help: "Log more detail (never changes behaviour)." },
  help: { type: "boolean", help: "Show this help." },
} as const satisfies Record<string, FlagSpec>;

/** The help text of `aggregate-metrics`. */
export function aggregateMetricsHelp(): string {
  return [
    "Usage: image-prefetcher aggregate-metrics [flags]",
    "",
    "Collects every pull attempt that `fetch --metrics-endpoint` streams from every node, keeps",
    "each node's current run in memory (one result per attempt id; earlier runs as counts) and",
    "serves them over HTTP:",
    "  /          an HTML report: progress, a node x image grid, slowest pulls, errors",
    "  /summary   JSON: per image and per node progress and durations (?grid=1 adds the grid)",
    "  /metrics   JSON array of the current runs' attempts; Prometheus text when Accept asks for it",
    "  /healthz   ok (no token needed)",
    "Reads need the Authorization header (never a query string): the --token-file token, or with",
    "--node-service-account a token RBAC lets get the path (nonResourceURLs); --local-http-port",
    "serves the same views without a credential on 127.0.0.1, for kubectl port-forward.",
    "",
    "Flags:",
    ...helpRows(AGGREGATE_METRICS_FLAGS, 28),
    "",
    "Exit status: 0 after SIGTERM or SIGINT (streams in progress get 5s to finish); 2 for a bad",
    "flag, an unreadable --token-file or an unusable --state-file; 1 when a port cannot be",
    "listened on.",
  ].join("\n");
}

/** What the command line asks for. */
export type AggregateMetricsInvocation =
  | {
    kind: "run";
    config: AggregateMetricsConfig;
    /** Authenticate with the Kubernetes API, with these settings. */
    kubernetesAuth?: KubernetesAuthSettings;
    logFormat: LogFormat;
    debug: boolean;
  }
  | { kind: "help" };

/** Parses the arguments. Throws {@linkcode InvalidInputError} naming the flag and the fix. */
export function parseAggregateMetricsArgs(args: string[]): AggregateMetricsInvocation {
  const flags = parseFlags("aggregate-metrics", AGGREGATE_METRICS_FLAGS, args);
  if (flags.boolean("help")) return { kind: "help" };
  return {
    kind: "run",
    config: {
      grpcPort: flags.wholeNumber("grpc-port", 0, 65535),
      httpPort: flags.wholeNumber("http-port", 0, 65535),
      localHttpPort: flags.given("local-http-port")
        ? flags.wholeNumber("local-http-port", 0, 65535)
        : undefined,
      maxResults: flags.wholeNumber("max-results", 1, 100_000_000),
      maxNodes: flags.wholeNumber("max-nodes", 1, 1_000_000),
      maxImages: flags.wholeNumber("max-images", 1, 1_000_000),
      nodeGoneAfterMs: goneAfter(flags),
      tokenFile: flags.string("token-file"),
      stateFile: flags.string("state-file"),
      waves: wavesSettings(flags),
    },
    kubernetesAuth: kubernetesAuthSettings(flags),
    logFormat: flags.oneOf("log-format", ["text", "json"])!,
    debug: flags.boolean("debug"),
  };
}

/** `--node-service-account` and its companions; not with `--token-file`. */
function kubernetesAuthSettings(
  flags: ParsedFlags<typeof AGGREGATE_METRICS_FLAGS>,
): KubernetesAuthSettings | undefined {
  const account = flags.string("node-service-account");
  if (account === undefined) {
    const stray = (["token-audience", "service-account-dir"] as const).find((f) => flags.given(f));
    if (stray === undefined) return undefined;
    throw new InvalidInputError(
      `--${stray} goes with --node-service-account: add it, or leave --${stray} out.`,
    );
  }
  const match = account.match(
    /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/([a-z0-9]([-a-z0-9.]*[a-z0-9])?)$/,
  );
  if (!match) {
    throw new InvalidInputError(
      `--node-service-account must be <namespace>/<name>, like prefetch/my-images, not "${account}".`,
    );
  }
  if (flags.given("token-file")) {
    throw new InvalidInputError(
      "--token-file and --node-service-account are two ways to authenticate; give one.",
    );
  }
  const audience = flags.string("token-audience")!;
  if (!audience || /\s/.test(audience)) {
    throw new InvalidInputError("--token-audience must be one word, like image-prefetcher.");
  }
  return {
    serviceAccount: { namespace: match[1], name: match[3] },
    audience,
    serviceAccountDir: flags.string("service-account-dir")!,
  };
}

/** The coordinator's settings with `--waves`; its tuning flags without it are refused. */
function wavesSettings(
  flags: ParsedFlags<typeof AGGREGATE_METRICS_FLAGS>,
): WaveCoordinatorOptions | undefined {
  if (!flags.boolean("waves")) {
    const stray = WAVES_FLAGS.find((name) => flags.given(name));
    if (stray === undefined) return undefined;
    throw new InvalidInputError(`--${stray} tunes waves: add --waves, or leave --${stray} out.`);
  }
  const leaseMs = flags.duration("lease-timeout");
  if (leaseMs <= 0) {
    throw new InvalidInputError("--lease-timeout must be longer than 0s, like 30s.");
  }
  return {
    firstWave: flags.wholeNumber("first-wave", 1, 100_000),
    fanout: flags.wholeNumber("fanout", 1, 100_000),
    maxNodesPulling: flags.wholeNumber("max-nodes-pulling", 0, 100_000),
    leaseMs,
  };
}

function goneAfter(flags: ParsedFlags<typeof AGGREGATE_METRICS_FLAGS>): number {
  const ms = flags.duration("node-gone-after");
  if (ms <= 0) throw new InvalidInputError("--node-gone-after must be longer than 0s, like 15m.");
  return ms;
}

const WAVES_FLAGS = ["first-wave", "fanout", "max-nodes-pulling", "lease-timeout"] as const;

/** Runs the server until SIGTERM or SIGINT, then exits 0. */
export async function main(args: string[]): Promise<never> {
  const invocation = await orExitOnInvalidInput(
    "aggregate-metrics",
    () => parseAggregateMetricsArgs(args),
  );
  if (invocation.kind === "help") {
    console.log(aggregateMetricsHelp());
    Deno.exit(ExitCode.Ok);
  }
  const stop = new AbortController();
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(signal, () => stop.abort(signal));
  }
  const logger = new Logger({ format: invocation.logFormat, debug: invocation.debug });
  if (invocation.config.tokenFile) {
    logger.warn(
      "--token-file trusts the node each message names: every holder of the token may speak for " +
        "any node; in Kubernetes, use --node-service-account (deploy.ts does)",
    );
  }
  let auth: ServerAuth | undefined;
  try {
    if (invocation.kubernetesAuth) {
      auth = await connectKubernetesAuth(invocation.kubernetesAuth, logger);
    }
  } catch (error) {
    if (!(error instanceof InvalidInputError)) throw error;
    logger.error(error.message);
    Deno.exit(ExitCode.InvalidInput);
  }
  Deno.exit(await runAggregateMetrics(invocation.config, { logger, auth, signal: stop.signal }));
}
