/**
 * The nodes' side of `/Waves/Admit`: one unary call per exchange, with a deadline and the bearer
 * token. Never imports the coordinator's server.
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import { currentToken, type TokenSource } from "../../core/token_file.ts";
import { WavesService, type WireAdmitRequest, type WireAdmitResponse } from "../protocol.ts";

/** Options for {@linkcode WavesClient}. */
export interface WavesClientOptions {
  /** `host:port` of the coordinator (the aggregate-metrics server's gRPC port). */
  endpoint: string;
  /** The bearer token the server requires, if any. */
  token?: TokenSource;
  /**
   * Close the connection with `close()` (an HTTP/2 GOAWAY). A process about to exit should not:
   * a GOAWAY can abort a Deno server (denoland/deno#36788); see MetricsSubmitterOptions.
   * @default {true}
   */
  gracefulClose?: boolean;
}

/** The coordinator refused for good: it does not serve waves, or not to us. */
export class WavesRefusedError extends Error {
  /** Creates the error with a sentence a user can act on. */
  constructor(message: string, readonly code: grpc.status) {
    super(message);
    this.name = "WavesRefusedError";
  }
}

/** Calls `/Waves/Admit`. */
export class WavesClient implements Disposable {
  readonly #client: grpc.Client;
  readonly #token?: TokenSource;
  readonly #graceful: boolean;

  /** Opens a channel to `options.endpoint` (lazily: nothing connects until the first call). */
  constructor(options: WavesClientOptions) {
    this.#client = new WavesService(options.endpoint, grpc.credentials.createInsecure(), {
      "grpc.initial_reconnect_backoff_ms": 200,
      "grpc.max_reconnect_backoff_ms": 2_000,
    });
    this.#token = options.token;
    this.#graceful = options.gracefulClose ?? true;
  }

  /**
   * One exchange. Rejects with {@linkcode WavesRefusedError} when retrying cannot help
   * (UNIMPLEMENTED, UNAUTHENTICATED, PERMISSION_DENIED, INVALID_ARGUMENT), with another error
   * otherwise (RESOURCE_EXHAUSTED among them: the coordinator may forget images and nodes).
   */
  admit(request: WireAdmitRequest, signal: AbortSignal): Promise<WireAdmitResponse> {
    const metadata = new grpc.Metadata();
    const token = currentToken(this.#token);
    if (token) metadata.set("authorization", `Bearer ${token}`);
    return new Promise((resolve, reject) => {
      if (signal.aborted) {
        reject(signal.reason);
        return;
      }
      // deno-lint-ignore no-explicit-any
      const call = (this.#client as any).Admit(
        request,
        metadata,
        (error: grpc.ServiceError | null, response: WireAdmitResponse) => {
          signal.removeEventListener("abort", cancel);
          if (error) reject(refusal(error) ?? error);
          else resolve(response);
        },
      ) as grpc.ClientUnaryCall;
      const cancel = () => call.cancel();
      signal.addEventListener("abort", cancel, { once: true });
    });
  }

  /** Closes the channel (gracefully only when so configured). */
  [Symbol.dispose](): void {
    if (this.#graceful) this.#client.close();
  }
}

function refusal(error: grpc.ServiceError): WavesRefusedError | undefined {
  switch (error.code) {
    case grpc.status.UNIMPLEMENTED:
      return new WavesRefusedError(
        "the metrics server does not coordinate waves; start aggregate-metrics with --waves",
        error.code,
      );
    case grpc.status.UNAUTHENTICATED:
    case grpc.status.PERMISSION_DENIED:
      return new WavesRefusedError(
        `the coordinator refused this node (${error.details}); check that fetch ` +
          "--metrics-token-file holds a token the server accepts",
        error.code,
      );
    case grpc.status.INVALID_ARGUMENT:
      return new WavesRefusedError(
        `the coordinator refused our request (${error.details}); pulling without waves`,
        error.code,
      );
    default:
      return undefined;
  }
}
