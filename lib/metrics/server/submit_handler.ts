/**
 * The gRPC `/Metrics/Submit` handler: a client stream of `Result` messages, each validated and
 * stored as it arrives, journaled before the stream is acknowledged, and answered with the
 * server's identity in the trailing metadata.
 *
 * A malformed, oversized or invalid message ends its stream with a gRPC status and is logged once
 * per kind of problem; the results before it in the stream are kept, and nothing else is
 * affected.
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "../../core/log.ts";
import {
  ACCEPTS_IN_PROGRESS,
  ACCEPTS_METADATA_KEY,
  InvalidResultError,
  type MetricsResult,
  MetricsService,
  resultFromWire,
  SERVER_ID_METADATA_KEY,
  type WireResult,
} from "../protocol.ts";
import {
  authorizationOf,
  grpcStatusOf,
  isRefusal,
  type NodeCaller,
  type Refusal,
  type ServerAuth,
} from "../../core/bearer_token.ts";
import { type MetricsStore, StoreFullError, StoreLimitError } from "./store.ts";
import type { WarnOnce } from "./warn_once.ts";

/** Where accepted attempts are written before their stream is acknowledged. */
export interface ResultJournal {
  /** Appends results; throws when it cannot. */
  append(results: readonly MetricsResult[]): void;
}

/** What the handler needs from the server it runs in. */
export interface SubmitHandlerOptions {
  /** Where results are kept. */
  store: MetricsStore;
  /** Where stream events are logged. */
  logger: Logger;
  /** Logs each kind of client problem once. */
  warnOnce: WarnOnce;
  /** Authenticates each stream, and says which node each of its results may be recorded for. */
  auth: ServerAuth;
  /** This server run's identity, sent after every stream. */
  serverId: string;
  /** Where accepted attempts are also written, if anywhere. */
  journal?: ResultJournal;
}

/** The most accepted results a stream holds before writing them to the journal. */
const JOURNAL_BATCH = 1_000;

const MALFORMED = Symbol("malformed");
type Malformed = { [MALFORMED]: { kind: string; code: grpc.status; message: string } };

/**
 * The `Metrics` service definition with a deserializer of our own, so that a message too big or
 * not decodable reaches the handler, which answers with a status and logs it, instead of grpc-js
 * answering on its own without a word.
 */
export function submitServiceDefinition(maxMessageBytes: number): grpc.ServiceDefinition {
  const submit = MetricsService.service.Submit;
  return {
    Submit: {
      ...submit,
      requestDeserialize: (buffer: Buffer): unknown => {
        if (buffer.length > maxMessageBytes) {
          return malformed(
            "oversized",
            grpc.status.RESOURCE_EXHAUSTED,
            `a Result of ${buffer.length} bytes is larger than the ${maxMessageBytes} bytes accepted`,
          );
        }
        try {
          return submit.requestDeserialize(buffer);
        } catch (error) {
          const why = (error as Error).message;
          return malformed(
            "undecodable",
            grpc.status.INVALID_ARGUMENT,
            `a message is not a Result (${why})`,
          );
        }
      },
    },
  };
}

function malformed(kind: string, code: grpc.status, message: string): Malformed {
  return { [MALFORMED]: { kind, code, message } };
}

/** Returns the `Submit` implementation for {@linkcode submitServiceDefinition}. */
export function submitHandler(
  options: SubmitHandlerOptions,
): grpc.handleClientStreamingCall<unknown, unknown> {
  return (call, callback) => void new SubmitStream(options, call, callback).start();
}

/** One client stream, from its metadata to its answer. */
class SubmitStream {
  readonly #options: SubmitHandlerOptions;
  readonly #call: grpc.ServerReadableStream<unknown, unknown>;
  readonly #callback: grpc.sendUnaryData<unknown>;
  readonly #peer: string;
  #done = false;
  #caller?: NodeCaller;
  #received = 0;
  #added = 0;
  /**
   * Accepted attempts not yet in the journal: written before the stream is answered, and when it
   * breaks (the client sends them again, and the store then calls them duplicates).
   */
  #unjournaled: MetricsResult[] = [];

  constructor(
    options: SubmitHandlerOptions,
    call: grpc.ServerReadableStream<unknown, unknown>,
    callback: grpc.sendUnaryData<unknown>,
  ) {
    this.#options = options;
    this.#call = call;
    this.#callback = callback;
    this.#peer = call.getPeer();
  }

  async start(): Promise<void> {
    // Listening for errors first: the stream may break while its caller is being checked.
    this.#call.on("error", (error) => {
      this.#options.logger.debug("stream broke", { ...this.#counts(), error: error.message });
      this.#journal();
      this.#done = true;
    });
    const caller = await this.#options.auth.node(authorizationOf(this.#call.metadata)).catch(
      (error): Refusal => ({
        refused: "unavailable",
        message: `cannot check the caller (${error})`,
      }),
    );
    if (isRefusal(caller)) {
      this.#options.warnOnce(`refused-${caller.refused}`, "refused a submit", {
        peer: this.#peer,
        error: caller.message,
      });
      this.#finish({ code: grpcStatusOf(caller), details: caller.message });
      return;
    }
    this.#caller = caller;
    this.#call.on("data", (message: unknown) => this.#onMessage(message));
    this.#call.on("end", () => {
      this.#options.logger.debug("stream received", this.#counts());
      this.#finish(null);
    });
  }

  #onMessage(message: unknown): void {
    if (this.#done) return;
    this.#received++;
    const bad = (message as Partial<Malformed>)[MALFORMED];
    if (bad) {
      this.#options.warnOnce(bad.kind, "rejected a stream", {
        peer: this.#peer,
        error: bad.message,
      });
      this.#finish({ code: bad.code, details: bad.message });
      return;
    }
    try {
      this.#store(message as Partial<WireResult>);
    } catch (error) {
      this.#finish(this.#refusal(error));
    }
  }

  #store(message: Partial<WireResult>): void {
    const { store } = this.#options;
    const node = this.#caller!.nodeFor(message.node ?? "");
    if (isRefusal(node)) throw node;
    const result = resultFromWire({ ...message, node }, (text) => store.intern(text));
    if (store.add(result) !== "added") return;
    this.#added++;
    if (result.outcome === "in-progress") return;
    this.#unjournaled.push(result);
    // A long stream is journaled as it goes, so what it holds back stays bounded.
    if (this.#unjournaled.length >= JOURNAL_BATCH) this.#journal();
  }

  /** The status that ends the stream after `error`, logged once per kind. */
  #refusal(error: unknown): Partial<grpc.StatusObject> {
    const { warnOnce, logger } = this.#options;
    const peer = this.#peer;
    if (isRefusal(error)) return { code: grpcStatusOf(error), details: error.message };
    if (error instanceof InvalidResultError) {
      warnOnce(error.kind, "rejected an invalid result", { peer, error: error.message });
      return { code: grpc.status.INVALID_ARGUMENT, details: error.message };
    }
    if (error instanceof StoreFullError) {
      warnOnce("store-full", "refused results: the store is full", {
        peer,
        max_results: error.maxResults,
      });
      return { code: grpc.status.RESOURCE_EXHAUSTED, details: error.message };
    }
    if (error instanceof StoreLimitError) {
      warnOnce(`limit-${error.kind}`, "refused a result past a bound", {
        peer,
        error: error.message,
      });
      return { code: grpc.status.RESOURCE_EXHAUSTED, details: error.message };
    }
    logger.error("failed to store a result", { peer, error: String(error) });
    return { code: grpc.status.INTERNAL, details: "the server failed to store a result" };
  }

  #journal(): void {
    const { journal, warnOnce } = this.#options;
    if (!journal || this.#unjournaled.length === 0) return;
    try {
      journal.append(this.#unjournaled);
    } catch (error) {
      warnOnce("journal", "could not write accepted attempts to the state file", {
        peer: this.#peer,
        error: (error as Error).message,
      });
    }
    this.#unjournaled = [];
  }

  #finish(error: Partial<grpc.StatusObject> | null): void {
    if (this.#done) return;
    this.#done = true;
    this.#journal();
    this.#call.removeAllListeners("data");
    const trailer = new grpc.Metadata();
    trailer.set(SERVER_ID_METADATA_KEY, this.#options.serverId);
    trailer.set(ACCEPTS_METADATA_KEY, ACCEPTS_IN_PROGRESS);
    if (error) this.#callback({ ...error, metadata: trailer } as grpc.ServiceError, null);
    else this.#callback(null, {}, trailer);
  }

  #counts() {
    return { peer: this.#peer, received: this.#received, added: this.#added };
  }
}
