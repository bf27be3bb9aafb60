/**
 * One `aggregate-metrics` run, the server-side counterpart of `runFetch`: read the token, restore
 * the attempts of the state file into the store, serve until told to stop, shut down. Returns the
 * exit status; never throws for bad input.
 *
 * @module
 */
import { ExitCode, InvalidInputError } from "../../core/exit_codes.ts";
import type { Logger } from "../../core/log.ts";
import { readTokenFile } from "../../core/token_file.ts";
import { openAuth, type ServerAuth, sharedTokenAuth } from "../../core/bearer_token.ts";
import { JournalError, MetricsJournal } from "./journal.ts";
import { MetricsServerStartError, startMetricsServer } from "./server.ts";
import { MetricsStore, StoreFullError, StoreLimitError } from "./store.ts";
import { WaveCoordinator, type WaveCoordinatorOptions } from "../../waves/coordinator.ts";
import { wavesEndpoint } from "../../waves/server/admit_handler.ts";

/** Everything an `aggregate-metrics` run is told by its flags. */
export interface AggregateMetricsConfig {
  /** The gRPC port; 0 picks a free one. */
  grpcPort: number;
  /** The HTTP port; 0 picks a free one. */
  httpPort: number;
  /** A loopback-only HTTP port serving the views without a credential (port-forward), if any. */
  localHttpPort?: number;
  /** The most attempts of current runs kept in memory. */
  maxResults: number;
  /** The most distinct nodes tracked (default 20,000). */
  maxNodes?: number;
  /** The most distinct images tracked (default 5,000). */
  maxImages?: number;
  /** A node silent this long with images pending is shown as gone, in ms (default 15 min). */
  nodeGoneAfterMs?: number;
  /** The state file's size past which it is compacted, in bytes (default 64 MiB). */
  stateFileCompactBytes?: number;
  /** File holding the bearer token clients must present, if any. */
  tokenFile?: string;
  /** Where accepted attempts are journaled and restored from, if anywhere. */
  stateFile?: string;
  /** Coordinate cluster-wide waves (`/Waves/Admit`) with these settings, if set. */
  waves?: WaveCoordinatorOptions;
}

/** What a run needs from its surroundings. */
export interface AggregateMetricsContext {
  /** Where events are logged. */
  logger: Logger;
  /** Who may submit, ask and read. @default {`config.tokenFile`'s token, or everyone} */
  auth?: ServerAuth;
  /** The run serves until this is aborted, then shuts down (5 s grace) and returns 0. */
  signal: AbortSignal;
  /** Called once the ports are open, with the ports (0 in the config picks free ones). */
  onListening?: (ports: { grpcPort: number; httpPort: number }) => void;
}

/** Runs the server until `context.signal` is aborted and returns the exit status. */
export async function runAggregateMetrics(
  config: AggregateMetricsConfig,
  context: AggregateMetricsContext,
): Promise<number> {
  const { logger } = context;
  let token: string | undefined;
  let journal: MetricsJournal | undefined;
  const store = new MetricsStore({
    maxResults: config.maxResults,
    maxNodes: config.maxNodes,
    maxImages: config.maxImages,
    goneAfterMs: config.nodeGoneAfterMs,
  });
  try {
    token = config.tokenFile ? await readTokenFile(config.tokenFile, "--token-file") : undefined;
    if (config.stateFile) journal = await restoreJournal(config, store, logger);
  } catch (error) {
    if (!(error instanceof InvalidInputError || error instanceof JournalError)) throw error;
    logger.error(error.message);
    return ExitCode.InvalidInput;
  }
  const auth = context.auth ?? (token ? sharedTokenAuth(token) : openAuth());
  let server;
  try {
    server = await startMetricsServer({
      store,
      logger,
      grpcPort: config.grpcPort,
      httpPort: config.httpPort,
      localHttpPort: config.localHttpPort,
      auth,
      journal,
      waves: config.waves &&
        wavesEndpoint({ coordinator: new WaveCoordinator(config.waves), logger, auth }),
    });
  } catch (error) {
    if (!(error instanceof MetricsServerStartError)) throw error;
    logger.error(error.message);
    return ExitCode.CannotListen;
  }
  logger.info("aggregate-metrics listening", {
    address: server.hostname,
    grpc_port: server.grpcPort,
    http_port: server.httpPort,
    max_results: config.maxResults,
    local_http_port: server.localHttpPort,
    auth: auth.mode,
    server_id: server.serverId,
    waves: config.waves
      ? `first-wave=${config.waves.firstWave} fanout=${config.waves.fanout} ` +
        `max-nodes-pulling=${config.waves.maxNodesPulling || "unbounded"}`
      : "off",
  });
  context.onListening?.({ grpcPort: server.grpcPort, httpPort: server.httpPort });
  await aborted(context.signal);
  logger.info("shutting down", {
    signal: String(context.signal.reason ?? "stop"),
    results: store.size,
    nodes: store.nodeCount,
  });
  await server.shutdown(5_000);
  return ExitCode.Ok;
}

/**
 * Opens the state file, streaming its records into the store (a record past one of the store's
 * bounds is left out and logged once), and hands the journal the store to compact from.
 */
async function restoreJournal(
  config: AggregateMetricsConfig,
  store: MetricsStore,
  logger: Logger,
): Promise<MetricsJournal> {
  const started = performance.now();
  let refused = 0;
  const opened = await MetricsJournal.open(config.stateFile!, (record) => {
    try {
      store.restore(record);
    } catch (error) {
      if (!(error instanceof StoreFullError || error instanceof StoreLimitError)) throw error;
      if (refused++ === 0) {
        logger.warn("the state file holds more than this server's bounds; the rest is left out", {
          file: config.stateFile,
          error: error.message,
        });
      }
    }
  }, {
    compactAtBytes: config.stateFileCompactBytes,
    onCompactError: (error) =>
      logger.warn("could not compact the state file; it keeps growing until the next try", {
        file: config.stateFile,
        error: error.message,
      }),
  });
  opened.journal.compactFrom(() => store.journalRecords());
  logger.info("restored the state file", {
    file: config.stateFile,
    records: opened.records,
    results: store.size,
    nodes: store.nodeCount,
    refused: refused || undefined,
    skipped_lines: opened.skipped || undefined,
    ms: Math.round(performance.now() - started),
  });
  return opened.journal;
}

function aborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) =>
    signal.addEventListener("abort", () => resolve(), { once: true })
  );
}
