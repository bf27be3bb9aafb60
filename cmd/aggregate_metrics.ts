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
    help: "A file holding a bearer token that submits and reads must present (pages: ?token=).",
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
  | { kind: "run"; config: AggregateMetricsConfig; logFormat: LogFormat; debug: boolean }
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
      maxResults: flags.wholeNumber("max-results", 1, 100_000_000),
      maxNodes: flags.wholeNumber("max-nodes", 1, 1_000_000),
      maxImages: flags.wholeNumber("max-images", 1, 1_000_000),
      nodeGoneAfterMs: goneAfter(flags),
      tokenFile: flags.string("token-file"),
      stateFile: flags.string("state-file"),
      waves: wavesSettings(flags),
    },
    logFormat: flags.oneOf("log-format", ["text", "json"])!,
    debug: flags.boolean("debug"),
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
  Deno.exit(await runAggregateMetrics(invocation.config, { logger, signal: stop.signal }));
}
