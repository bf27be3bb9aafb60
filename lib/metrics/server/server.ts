/**
 * The `aggregate-metrics` server: the gRPC `Metrics` service that nodes stream pull attempts to,
 * and the HTTP endpoints that serve them (`/metrics` as JSON or Prometheus text, `/summary`, the
 * HTML report at `/`, and `/healthz`), both over one {@linkcode MetricsStore}.
 *
 * A malformed, oversized or invalid message ends its stream with a gRPC status and is logged once
 * per kind of problem; the results before it in the stream are kept, and nothing else is
 * affected.
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import { timingSafeEqual } from "node:crypto";
import metricsProto from "../../../proto/metrics.proto" with { type: "text" };
import { renderHtmlReport } from "./html_report.ts";
import type { Logger } from "../../core/log.ts";
import {
  InvalidResultError,
  type MetricsResult,
  resultFromWire,
  resultToJson,
  type WireResult,
} from "../protocol.ts";
import { type MetricsStore, StoreFullError } from "./store.ts";
import { formatPrometheus, PROMETHEUS_CONTENT_TYPE, wantsPrometheus } from "./prometheus.ts";
import { loadProto, serviceConstructor } from "../../core/proto.ts";
import type { WavesEndpoint } from "../../waves/server/admit_handler.ts";

/** The trailing-metadata key carrying the server's identity, new at every start. */
export const SERVER_ID_METADATA_KEY = "x-metrics-server-id";

/**
 * The trailing-metadata key by which a server says which results beyond attempts it takes; its
 * value is {@linkcode ACCEPTS_IN_PROGRESS}. Older servers (and the original tool's) do not send it.
 */
export const ACCEPTS_METADATA_KEY = "x-metrics-accepts";

/** The value of {@linkcode ACCEPTS_METADATA_KEY} of a server that keeps `in-progress` results. */
export const ACCEPTS_IN_PROGRESS = "in-progress";

/** The `Metrics` service constructor (`/Metrics/Submit`), for clients and servers. */
export const MetricsService: grpc.ServiceClientConstructor = serviceConstructor(
  loadProto(metricsProto),
  "Metrics",
);

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
   * The address both listen on.
   * @default {"0.0.0.0"}
   */
  hostname?: string;
  /** When set, submits and reads need `Authorization: Bearer <token>` (pages: `?token=`). */
  token?: string;
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
   * restarted server has them (see `lib/metrics_journal.ts`). In-progress snapshots are not.
   */
  journal?: { append(results: readonly MetricsResult[]): void };
  /** Cluster-wide waves: `/Waves/Admit` on the gRPC port, its picture in `/summary` and `/`. */
  waves?: WavesEndpoint;
}

/** A running server. */
export interface MetricsServer extends AsyncDisposable {
  /** The gRPC port it listens on. */
  readonly grpcPort: number;
  /** The HTTP port it listens on. */
  readonly httpPort: number;
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
  /** Creates the error for a failed bind of `what` on `address`. */
  constructor(what: string, address: string, cause: unknown) {
    super(
      `cannot listen for ${what} on ${address} (${(cause as Error)?.message ?? cause}); ` +
        "choose a free port with --grpc-port / --http-port",
      { cause },
    );
    this.name = "MetricsServerStartError";
  }
}

const MALFORMED = Symbol("malformed");
type Malformed = { [MALFORMED]: { kind: string; code: grpc.status; message: string } };

/** Starts the gRPC and HTTP servers. */
export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const { store, logger } = options;
  const hostname = options.hostname ?? "0.0.0.0";
  const maxMessageBytes = options.maxMessageBytes ?? 65_536;
  const serverId = crypto.randomUUID();
  const token = options.token ? new TextEncoder().encode(options.token) : undefined;
  const logged = new Set<string>();
  const warnOnce = (kind: string, message: string, fields: Record<string, string | number>) => {
    if (logged.has(kind)) {
      logger.debug(message, { kind, ...fields });
      return;
    }
    logged.add(kind);
    logger.warn(`${message} (logged once per kind; --debug shows every one)`, { kind, ...fields });
  };
  const authorized = (presented: string | undefined): boolean => {
    if (!token) return true;
    if (!presented) return false;
    const bytes = new TextEncoder().encode(presented);
    return bytes.length === token.length && timingSafeEqual(bytes, token);
  };

  // Our own deserializer, so a message too big or not decodable reaches the handler, which
  // answers with a status and logs it, instead of grpc-js answering on its own without a word.
  const definition = MetricsService.service;
  const submit = definition.Submit;
  const service: grpc.ServiceDefinition = {
    Submit: {
      ...submit,
      requestDeserialize: (buffer: Buffer): unknown => {
        if (buffer.length > maxMessageBytes) {
          return {
            [MALFORMED]: {
              kind: "oversized",
              code: grpc.status.RESOURCE_EXHAUSTED,
              message: `a Result of ${buffer.length} bytes is larger than the ${maxMessageBytes} ` +
                "bytes accepted",
            },
          } satisfies Malformed;
        }
        try {
          return submit.requestDeserialize(buffer);
        } catch (error) {
          return {
            [MALFORMED]: {
              kind: "undecodable",
              code: grpc.status.INVALID_ARGUMENT,
              message: `a message is not a Result (${(error as Error).message})`,
            },
          } satisfies Malformed;
        }
      },
    },
  };

  const grpcServer = new grpc.Server({
    "grpc.max_receive_message_length": Math.max(4 << 20, maxMessageBytes + 1024),
  });
  grpcServer.addService(service, {
    Submit: (
      call: grpc.ServerReadableStream<unknown, unknown>,
      callback: grpc.sendUnaryData<unknown>,
    ) => {
      const peer = call.getPeer();
      const trailer = new grpc.Metadata();
      trailer.set(SERVER_ID_METADATA_KEY, serverId);
      trailer.set(ACCEPTS_METADATA_KEY, ACCEPTS_IN_PROGRESS);
      let done = false;
      let received = 0, added = 0;
      // Accepted attempts not yet in the journal: written before the stream is answered, and
      // when it breaks (the client sends them again, and the store then calls them duplicates).
      let unjournaled: MetricsResult[] = [];
      const journal = () => {
        if (!options.journal || unjournaled.length === 0) return;
        try {
          options.journal.append(unjournaled);
        } catch (error) {
          warnOnce("journal", "could not write accepted attempts to the state file", {
            peer,
            error: (error as Error).message,
          });
        }
        unjournaled = [];
      };
      const finish = (error: Partial<grpc.StatusObject> | null) => {
        if (done) return;
        done = true;
        journal();
        call.removeAllListeners("data");
        if (error) callback({ ...error, metadata: trailer } as grpc.ServiceError, null);
        else callback(null, {}, trailer);
      };
      const presented = String(call.metadata.get("authorization")[0] ?? "");
      if (!authorized(presented.replace(/^Bearer\s+/i, "") || undefined)) {
        warnOnce("unauthenticated", "refused a submit without the right bearer token", { peer });
        finish({
          code: grpc.status.UNAUTHENTICATED,
          details: "this server needs the bearer token of its --token-file",
        });
        return;
      }
      call.on("data", (message: unknown) => {
        if (done) return;
        received++;
        const malformed = (message as Partial<Malformed>)[MALFORMED];
        if (malformed) {
          warnOnce(malformed.kind, "rejected a stream", { peer, error: malformed.message });
          finish({ code: malformed.code, details: malformed.message });
          return;
        }
        try {
          const result = resultFromWire(message as Partial<WireResult>, (t) => store.intern(t));
          if (store.add(result) === "added") {
            added++;
            if (result.outcome !== "in-progress") unjournaled.push(result);
          }
        } catch (error) {
          if (error instanceof InvalidResultError) {
            warnOnce(error.kind, "rejected an invalid result", { peer, error: error.message });
            finish({ code: grpc.status.INVALID_ARGUMENT, details: error.message });
          } else if (error instanceof StoreFullError) {
            warnOnce("store-full", "refused results: the store is full", {
              peer,
              max_results: error.maxResults,
            });
            finish({ code: grpc.status.RESOURCE_EXHAUSTED, details: error.message });
          } else {
            logger.error("failed to store a result", { peer, error: String(error) });
            finish({ code: grpc.status.INTERNAL, details: "the server failed to store a result" });
          }
        }
      });
      call.on("end", () => {
        logger.debug("stream received", { peer, received, added });
        finish(null);
      });
      call.on("error", (error) => {
        logger.debug("stream broke", { peer, received, added, error: error.message });
        journal();
        done = true;
      });
    },
  });
  if (options.waves) grpcServer.addService(options.waves.definition, options.waves.implementation);
  const grpcAddress = hostname.includes(":") ? `[${hostname}]` : hostname;
  const grpcPort = await new Promise<number>((resolve, reject) => {
    grpcServer.bindAsync(
      `${grpcAddress}:${options.grpcPort ?? 8443}`,
      grpc.ServerCredentials.createInsecure(),
      (error, port) => {
        if (error) {
          reject(new MetricsServerStartError("gRPC", `${grpcAddress}:${options.grpcPort}`, error));
        } else resolve(port);
      },
    );
  });

  let httpServer: Deno.HttpServer<Deno.NetAddr>;
  try {
    httpServer = Deno.serve({
      hostname,
      port: options.httpPort ?? 8080,
      onListen: () => {},
    }, (request) => handleHttp(request));
  } catch (error) {
    grpcServer.forceShutdown();
    throw new MetricsServerStartError("HTTP", `${hostname}:${options.httpPort}`, error);
  }

  function handleHttp(request: Request): Response {
    const url = new URL(request.url);
    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response("only GET is served\n", { status: 405, headers: { allow: "GET" } });
    }
    if (url.pathname === "/healthz") return new Response("ok\n");
    const known = ["/", "/metrics", "/summary"];
    if (!known.includes(url.pathname)) {
      return new Response(`not found; try ${known.join(", ")}\n`, { status: 404 });
    }
    const header = request.headers.get("authorization")?.replace(/^Bearer\s+/i, "");
    if (!authorized(header ?? url.searchParams.get("token") ?? undefined)) {
      return new Response(
        "this server needs its bearer token: send Authorization: Bearer <token>, or add " +
          "?token=<token> to a page's address\n",
        { status: 401, headers: { "www-authenticate": "Bearer" } },
      );
    }
    const noStore = { "cache-control": "no-store" };
    switch (url.pathname) {
      case "/metrics":
        if (wantsPrometheus(request.headers.get("accept")) || url.searchParams.has("prometheus")) {
          return new Response(formatPrometheus(store), {
            headers: { "content-type": PROMETHEUS_CONTENT_TYPE, ...noStore },
          });
        }
        return new Response(jsonResults(store), {
          headers: { "content-type": "application/json", ...noStore },
        });
      case "/summary": {
        const grid = ["1", "true"].includes(url.searchParams.get("grid") ?? "");
        const waves = options.waves?.snapshot();
        return new Response(JSON.stringify({ ...store.summary({ grid }), waves }), {
          headers: { "content-type": "application/json", ...noStore },
        });
      }
      default:
        return new Response(
          renderHtmlReport(store.summary({ grid: true }), {
            refreshSeconds: options.reportRefreshSeconds,
            waves: options.waves?.snapshot(),
          }),
          { headers: { "content-type": "text/html; charset=utf-8", ...noStore } },
        );
    }
  }

  let stopping: Promise<void> | undefined;
  const shutdown = (graceMs = 5_000): Promise<void> =>
    stopping ??= (async () => {
      const grpcDone = new Promise<void>((resolve) => grpcServer.tryShutdown(() => resolve()));
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<"late">((resolve) =>
        timer = setTimeout(() => resolve("late"), graceMs)
      );
      const httpDone = httpServer.shutdown();
      if (await Promise.race([Promise.all([grpcDone, httpDone]), late]) === "late") {
        logger.warn("closing streams still open after the grace period", { grace_ms: graceMs });
        grpcServer.forceShutdown();
      }
      clearTimeout(timer);
      await httpDone.catch(() => {});
    })();

  return {
    grpcPort,
    httpPort: httpServer.addr.port,
    serverId,
    shutdown,
    [Symbol.asyncDispose]: () => shutdown(),
  };
}

/** Streams every result as one JSON array, a few thousand at a time. */
function jsonResults(store: MetricsStore): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  const iterator = store.results();
  let remaining = store.size;
  let first = true;
  return new ReadableStream({
    pull(controller) {
      const parts: string[] = [];
      if (first) parts.push("[");
      for (let i = 0; i < 2_000 && remaining > 0; i++, remaining--) {
        const next = iterator.next();
        if (next.done) {
          remaining = 0;
          break;
        }
        parts.push((first ? "\n" : ",\n") + JSON.stringify(resultToJson(next.value)));
        first = false;
      }
      if (remaining === 0) {
        parts.push("\n]\n");
        controller.enqueue(encoder.encode(parts.join("")));
        controller.close();
        return;
      }
      controller.enqueue(encoder.encode(parts.join("")));
    },
  });
}
