/**
 * `image-prefetcher aggregate-metrics`: flags and wiring of the metrics server. The work is done
 * by `lib/metrics_server.ts` and `lib/metrics_store.ts`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { readTokenFile } from "../lib/core/token_file.ts";
import { ExitCode, InvalidInputError } from "../lib/core/exit_codes.ts";
import { type LogFormat, Logger } from "../lib/core/log.ts";
import { MetricsServerStartError, startMetricsServer } from "../lib/metrics/server/server.ts";
import { MetricsStore, StoreFullError } from "../lib/metrics/server/store.ts";
import { JournalError, MetricsJournal } from "../lib/metrics/server/journal.ts";
import { WaveCoordinator, type WaveCoordinatorOptions } from "../lib/waves/coordinator.ts";
import { wavesEndpoint } from "../lib/waves/server/admit_handler.ts";
import { parseDuration } from "../lib/core/duration.ts";

function positiveDuration(text: string, flag: string): number {
  let ms: number;
  try {
    ms = parseDuration(text);
  } catch (error) {
    throw new InvalidInputError(`--${flag}: ${(error as Error).message}`);
  }
  if (ms <= 0) throw new InvalidInputError(`--${flag} must be longer than 0s, like 30s.`);
  return ms;
}

interface FlagSpec {
  type: "string" | "boolean";
  default?: string;
  value?: string;
  help: string;
}

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
    help: "The most attempts kept in memory (about 600 B each); more are refused.",
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
  const rows = Object.entries(AGGREGATE_METRICS_FLAGS as Record<string, FlagSpec>).map(
    ([name, spec]) => {
      const left = `  --${name}${spec.value ? ` ${spec.value}` : ""}`;
      const def = spec.default !== undefined ? ` (default ${spec.default})` : "";
      return `${left.padEnd(28)}${spec.help}${def}`;
    },
  );
  return [
    "Usage: image-prefetcher aggregate-metrics [flags]",
    "",
    "Collects every pull attempt that `fetch --metrics-endpoint` streams from every node, keeps",
    "them in memory (one per attempt id) and serves them over HTTP:",
    "  /          an HTML report: progress, a node x image grid, slowest pulls, errors",
    "  /summary   JSON: per image and per node progress and durations (?grid=1 adds the grid)",
    "  /metrics   JSON array of every attempt; Prometheus text when the Accept header asks for it",
    "  /healthz   ok (no token needed)",
    "",
    "Flags:",
    ...rows,
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
    grpcPort: number;
    httpPort: number;
    maxResults: number;
    tokenFile?: string;
    stateFile?: string;
    /** Cluster-wide waves, when --waves. */
    waves?: WaveCoordinatorOptions;
    logFormat: LogFormat;
    debug: boolean;
  }
  | { kind: "help" };

/** Parses the arguments. Throws {@linkcode InvalidInputError} naming the flag and the fix. */
export function parseAggregateMetricsArgs(args: string[]): AggregateMetricsInvocation {
  let parsed;
  try {
    parsed = parseArgs({ args, options: AGGREGATE_METRICS_FLAGS, strict: true });
  } catch (error) {
    throw new InvalidInputError(
      `${
        (error as Error).message.replace(/\.$/, "")
      }; run "image-prefetcher aggregate-metrics --help" for the flags.`,
    );
  }
  const v = parsed.values;
  if (v.help) return { kind: "help" };
  const str = (name: keyof typeof AGGREGATE_METRICS_FLAGS): string | undefined =>
    (v[name] as string | undefined) ?? (AGGREGATE_METRICS_FLAGS[name] as FlagSpec).default;
  const whole = (name: keyof typeof AGGREGATE_METRICS_FLAGS, min: number, max: number) => {
    const text = str(name)!;
    const value = Number(text);
    if (!/^\d+$/.test(text) || value < min || value > max) {
      throw new InvalidInputError(
        `--${name} must be a whole number from ${min} to ${max}, not "${text}".`,
      );
    }
    return value;
  };
  const wavesFlags = ["first-wave", "fanout", "max-nodes-pulling", "lease-timeout"] as const;
  const given = (name: string) => args.some((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  const stray = wavesFlags.find(given);
  if (stray && !v.waves) {
    throw new InvalidInputError(`--${stray} tunes waves: add --waves, or leave --${stray} out.`);
  }
  const logFormat = str("log-format");
  if (logFormat !== "text" && logFormat !== "json") {
    throw new InvalidInputError(`--log-format must be text or json, not "${logFormat}".`);
  }
  return {
    kind: "run",
    grpcPort: whole("grpc-port", 0, 65535),
    httpPort: whole("http-port", 0, 65535),
    maxResults: whole("max-results", 1, 100_000_000),
    tokenFile: str("token-file"),
    stateFile: str("state-file"),
    waves: v.waves
      ? {
        firstWave: whole("first-wave", 1, 100_000),
        fanout: whole("fanout", 1, 100_000),
        maxNodesPulling: whole("max-nodes-pulling", 0, 100_000),
        leaseMs: positiveDuration(str("lease-timeout")!, "lease-timeout"),
      }
      : undefined,
    logFormat,
    debug: v.debug ?? false,
  };
}

/** Runs the server until SIGTERM or SIGINT, then exits 0. */
export async function main(args: string[]): Promise<never> {
  let invocation: AggregateMetricsInvocation;
  let token: string | undefined;
  try {
    invocation = parseAggregateMetricsArgs(args);
    if (invocation.kind === "run" && invocation.tokenFile) {
      token = await readTokenFile(invocation.tokenFile, "--token-file");
    }
  } catch (error) {
    if (!(error instanceof InvalidInputError)) throw error;
    console.error(`image-prefetcher aggregate-metrics: ${error.message}`);
    Deno.exit(ExitCode.InvalidInput);
  }
  if (invocation.kind === "help") {
    console.log(aggregateMetricsHelp());
    Deno.exit(ExitCode.Ok);
  }
  const logger = new Logger({ format: invocation.logFormat, debug: invocation.debug });
  const store = new MetricsStore({ maxResults: invocation.maxResults });
  let journal: MetricsJournal | undefined;
  if (invocation.stateFile) {
    try {
      const opened = await MetricsJournal.open(invocation.stateFile);
      journal = opened.journal;
      let restored = 0;
      for (const result of opened.results) {
        try {
          if (store.add(result) === "added") restored++;
        } catch (error) {
          if (!(error instanceof StoreFullError)) throw error;
          logger.warn(
            "the state file holds more attempts than --max-results; the rest are left out",
            {
              file: invocation.stateFile,
              max_results: invocation.maxResults,
            },
          );
          break;
        }
      }
      logger.info("restored attempts from the state file", {
        file: invocation.stateFile,
        restored,
        skipped_lines: opened.skipped || undefined,
      });
    } catch (error) {
      if (!(error instanceof JournalError)) throw error;
      logger.error(error.message);
      Deno.exit(ExitCode.InvalidInput);
    }
  }
  let server;
  try {
    server = await startMetricsServer({
      store,
      logger,
      grpcPort: invocation.grpcPort,
      httpPort: invocation.httpPort,
      token,
      journal,
      waves: invocation.waves &&
        wavesEndpoint({ coordinator: new WaveCoordinator(invocation.waves), logger, token }),
    });
  } catch (error) {
    if (!(error instanceof MetricsServerStartError)) throw error;
    logger.error(error.message);
    Deno.exit(1);
  }
  logger.info("aggregate-metrics listening", {
    grpc_port: server.grpcPort,
    http_port: server.httpPort,
    max_results: invocation.maxResults,
    token: token ? "required" : "none",
    server_id: server.serverId,
    waves: invocation.waves
      ? `first-wave=${invocation.waves.firstWave} fanout=${invocation.waves.fanout} ` +
        `max-nodes-pulling=${invocation.waves.maxNodesPulling || "unbounded"}`
      : "off",
  });
  return await new Promise<never>(() => {
    let stopping = false;
    for (const signal of ["SIGTERM", "SIGINT"] as const) {
      Deno.addSignalListener(signal, async () => {
        if (stopping) return;
        stopping = true;
        logger.info("shutting down", { signal, results: store.size, nodes: store.nodeCount });
        await server.shutdown(5_000);
        Deno.exit(ExitCode.Ok);
      });
    }
  });
}
