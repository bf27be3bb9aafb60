/**
 * The `aggregate-metrics` server: the gRPC `Metrics` service that nodes stream pull attempts to
 * (`submit_handler.ts`), and the HTTP views that serve them (`http_routes.ts`), both over one
 * {@linkcode MetricsStore}. This module binds the ports and shuts them down.
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "../../core/log.ts";
import { openAuth, type ServerAuth, sharedTokenAuth } from "../../core/bearer_token.ts";
import { handleHttp } from "./http_routes.ts";
import type { MetricsStore } from "./store.ts";
import { type ResultJournal, submitHandler, submitServiceDefinition } from "./submit_handler.ts";
import { warnOnce } from "./warn_once.ts";
import type { WavesEndpoint } from "../../waves/server/admit_handler.ts";

/** Options for {@linkcode startMetricsServer}. */
export interface MetricsServerOptions {
  /** Where results are kept. */
  store: MetricsStore;
  /** Where events are logged. */
  logger: Logger;
  /**
   * The gRPC port; 0 picks a free one.
   * @default {8443}
   */
  grpcPort?: number;
  /**
   * The HTTP port; 0 picks a free one.
   * @default {8080}
   */
  httpPort?: number;
  /**
   * The address both listen on. Without it, both listen on `::` (every IPv6 and, dual-stack,
   * every IPv4 address), or on `0.0.0.0` where IPv6 is unavailable.
   */
  hostname?: string;
  /**
   * Addresses to try in turn when `hostname` is not set; the first both ports can listen on wins.
   * @default {["::", "0.0.0.0"]}
   */
  hostnames?: readonly string[];
  /** When set (and `auth` is not), submits and reads need `Authorization: Bearer <token>`. */
  token?: string;
  /** Who may submit, ask and read. @default {the `token` check, or everyone} */
  auth?: ServerAuth;
  /**
   * Also serve the views on `127.0.0.1:<localHttpPort>` without any credential, for people who
   * reach it with `kubectl port-forward` (which RBAC guards); 0 picks a free port.
   */
  localHttpPort?: number;
  /**
   * The largest `Result` message accepted, in bytes; larger ones end their stream with
   * RESOURCE_EXHAUSTED.
   * @default {65_536}
   */
  maxMessageBytes?: number;
  /**
   * Seconds between refreshes of the HTML report while a run is in progress.
   * @default {5}
   */
  reportRefreshSeconds?: number;
  /**
   * Where accepted attempts are also written, before their stream is acknowledged, so that a
   * restarted server has them (see `journal.ts`). In-progress snapshots are not.
   */
  journal?: ResultJournal;
  /** Cluster-wide waves: `/Waves/Admit` on the gRPC port, its picture in `/summary` and `/`. */
  waves?: WavesEndpoint;
}

/** A running server. */
export interface MetricsServer extends AsyncDisposable {
  /** The gRPC port it listens on. */
  readonly grpcPort: number;
  /** The HTTP port it listens on. */
  readonly httpPort: number;
  /** The loopback-only HTTP port, when one was asked for. */
  readonly localHttpPort?: number;
  /** The address both listen on (`::` when dual-stack). */
  readonly hostname: string;
  /** This run's identity, sent as trailing metadata after every stream. */
  readonly serverId: string;
  /**
   * Stops accepting, lets streams and requests in progress finish for up to `graceMs`, then
   * closes what is left.
   */
  shutdown(graceMs?: number): Promise<void>;
}

/** The server could not listen on a port. */
export class MetricsServerStartError extends Error {
  /**
   * Whether another address might work: not when the port is taken (it is as taken on the next
   * address), nor for the local port, which is always on 127.0.0.1.
   */
  readonly otherAddressMayWork: boolean;

  /**
   * Creates the error for a failed bind of `what` on `address`; `flag` is the one that chooses
   * that port.
   */
  constructor(what: string, address: string, flag: string, cause: unknown) {
    const reason = (cause as Error)?.message ?? String(cause);
    super(`cannot listen for ${what} on ${address} (${reason}); choose a free port with ${flag}`, {
      cause,
    });
    this.name = "MetricsServerStartError";
    this.otherAddressMayWork = flag !== "--local-http-port" && !portInUse(cause, reason);
  }
}

/** Whether a bind failed because something else listens on the port. */
function portInUse(cause: unknown, reason: string): boolean {
  return cause instanceof Deno.errors.AddrInUse ||
    /EADDRINUSE|address already in use/i.test(reason);
}

/**
 * Starts the gRPC and HTTP servers, on `options.hostname`, or else on the first of
 * `options.hostnames` (`::`, then `0.0.0.0`) where both can listen; a fallback is logged.
 */
export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const candidates = options.hostname ? [options.hostname] : options.hostnames ?? ["::", "0.0.0.0"];
  for (const [index, hostname] of candidates.entries()) {
    try {
      return await startOn(options, hostname);
    } catch (error) {
      const next = candidates[index + 1];
      if (
        next === undefined || !(error instanceof MetricsServerStartError) ||
        !error.otherAddressMayWork
      ) throw error;
      options.logger.info("cannot listen on this address; trying the next one", {
        address: hostname,
        next,
        error: error.message,
      });
    }
  }
  throw new Error("unreachable: no address to listen on");
}

async function startOn(options: MetricsServerOptions, hostname: string): Promise<MetricsServer> {
  const { store, logger } = options;
  const serverId = crypto.randomUUID();
  const auth = options.auth ?? (options.token ? sharedTokenAuth(options.token) : openAuth());
  const grpcServer = new grpc.Server({
    "grpc.max_receive_message_length": Math.max(
      4 << 20,
      (options.maxMessageBytes ?? 65_536) + 1024,
    ),
  });
  grpcServer.addService(submitServiceDefinition(options.maxMessageBytes ?? 65_536), {
    Submit: submitHandler({
      store,
      logger,
      warnOnce: warnOnce(logger),
      auth,
      serverId,
      journal: options.journal,
    }),
  });
  if (options.waves) grpcServer.addService(options.waves.definition, options.waves.implementation);
  const grpcPort = await bindGrpc(grpcServer, hostname, options.grpcPort ?? 8443);
  const context = {
    store,
    reportRefreshSeconds: options.reportRefreshSeconds,
    waves: options.waves && (() => options.waves!.snapshot()),
  };
  let httpServer: Deno.HttpServer<Deno.NetAddr>;
  try {
    httpServer = Deno.serve(
      { hostname, port: options.httpPort ?? 8080, onListen: () => {} },
      (request) => handleHttp(request, context, auth),
    );
  } catch (error) {
    grpcServer.forceShutdown();
    throw new MetricsServerStartError(
      "HTTP",
      `${hostname}:${options.httpPort}`,
      "--http-port",
      error,
    );
  }
  let localServer: Deno.HttpServer<Deno.NetAddr> | undefined;
  if (options.localHttpPort !== undefined) {
    try {
      const open = openAuth();
      localServer = Deno.serve(
        { hostname: "127.0.0.1", port: options.localHttpPort, onListen: () => {} },
        (request) => handleHttp(request, context, open),
      );
    } catch (error) {
      grpcServer.forceShutdown();
      await httpServer.shutdown();
      throw new MetricsServerStartError(
        "HTTP without credentials",
        `127.0.0.1:${options.localHttpPort}`,
        "--local-http-port",
        error,
      );
    }
  }
  let stopping: Promise<void> | undefined;
  const shutdown = (graceMs = 5_000): Promise<void> =>
    stopping ??= Promise.all([
      shutdownBoth(grpcServer, httpServer, graceMs, logger),
      localServer?.shutdown(),
    ]).then(() => {});
  return {
    grpcPort,
    httpPort: httpServer.addr.port,
    localHttpPort: localServer?.addr.port,
    hostname,
    serverId,
    shutdown,
    [Symbol.asyncDispose]: () => shutdown(),
  };
}

function bindGrpc(server: grpc.Server, hostname: string, port: number): Promise<number> {
  const address = `${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`;
  return new Promise<number>((resolve, reject) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (error, bound) => {
      if (error) reject(new MetricsServerStartError("gRPC", address, "--grpc-port", error));
      else resolve(bound);
    });
  });
}

/**
 * Stops accepting, lets streams and requests in progress finish for up to `graceMs`, then closes
 * what is left.
 */
async function shutdownBoth(
  grpcServer: grpc.Server,
  httpServer: Deno.HttpServer,
  graceMs: number,
  logger: Logger,
): Promise<void> {
  const grpcDone = new Promise<void>((resolve) => grpcServer.tryShutdown(() => resolve()));
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) => timer = setTimeout(() => resolve("late"), graceMs));
  const httpDone = httpServer.shutdown();
  if (await Promise.race([Promise.all([grpcDone, httpDone]), late]) === "late") {
    logger.warn("closing streams still open after the grace period", { grace_ms: graceMs });
    grpcServer.forceShutdown();
  }
  clearTimeout(timer);
  await httpDone.catch(() => {});
}
