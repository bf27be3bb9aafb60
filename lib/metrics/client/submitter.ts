/**
 * The client side of `--metrics-endpoint`: sends each pull attempt to an `aggregate-metrics`
 * server as it finishes, without ever slowing the pulls down.
 *
 * Delivery scheme. `submit()` only appends to a bounded buffer. One sender streams the buffer
 * through client-streaming `Submit` calls, each a *batch*: a call is opened when there is
 * something to send, every result submitted while it is open is written at once (so the server
 * sees it immediately), and the call is ended after {@linkcode MetricsSubmitterOptions.batchSize}
 * results or {@linkcode MetricsSubmitterOptions.batchWindowMs}, whichever comes first. The
 * server's single `Empty` answer acknowledges the whole batch; only then are its results
 * counted as delivered. If the call fails (server down, slow past its deadline, restarting), the
 * batch goes back to the front of the buffer and is sent again after a growing, jittered backoff.
 * The server keeps one result per `attempt_id`, so sending twice is harmless.
 *
 * The server's memory does not survive a restart, so every answer carries the server's identity
 * (trailing metadata `x-metrics-server-id`); when it changes, results delivered to the previous
 * server are sent again. A batch the server refuses as invalid is split into single results and
 * each one that is refused alone is given up (counted as rejected), so one bad result cannot block
 * the others.
 *
 * `in-progress` results (snapshots of an attempt still downloading) are best effort and not
 * attempts: only the latest one per attempt waits in the buffer (a newer one replaces it, the
 * attempt's finished result removes it), they are never counted in the `DeliveryReport`
 * nor sent again to a restarted server, and they are sent only to a server that says it keeps
 * them (trailing metadata `x-metrics-accepts: in-progress`). Until a server has answered once, a
 * snapshot waits for that answer (an empty stream asks for it); a server that does not say so
 * (the original tool's, which would count a snapshot as a pulled attempt, or an older one of ours,
 * which refuses the unknown outcome) gets none, and nothing is dropped but the snapshots.
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import { type Clock, systemClock } from "../../core/clock.ts";
import type { Logger } from "../../core/log.ts";
import type { TokenSource } from "../../core/token_file.ts";
import type { DeliveryReport } from "../../pull/reporter.ts";
import { type BufferEntry, DeliveryBuffer, isSnapshot } from "./delivery_buffer.ts";
import { inProgressVerdict, openSubmitCall, serverIdOf, type SubmitCall } from "./submit_call.ts";
import { type MetricsResult, MetricsService, resultToWire } from "../protocol.ts";

/** Options for {@linkcode MetricsSubmitter}. */
export interface MetricsSubmitterOptions {
  /** The server's `host:port`. */
  endpoint: string;
  /** Sent as `Authorization: Bearer <token>` when set (a function is asked on every call). */
  token?: TokenSource;
  /** Where delivery problems are logged (once per outage, not per result). */
  logger: Logger;
  /**
   * The most results held while not acknowledged; past it, new results are dropped (and counted).
   * @default {10_000}
   */
  maxBuffered?: number;
  /**
   * Delivered results kept to send again to a restarted server.
   * @default {10_000}
   */
  maxRemembered?: number;
  /**
   * The most results per stream.
   * @default {100}
   */
  batchSize?: number;
  /**
   * How long a stream stays open for more results before it is ended and acknowledged.
   * @default {1_000}
   */
  batchWindowMs?: number;
  /**
   * How long the server may take to answer an ended stream before it is given up and retried.
   * @default {10_000}
   */
  ackTimeoutMs?: number;
  /**
   * The first wait after a failed stream; doubled up to `maxBackoffMs`, with ±20% jitter.
   * @default {250}
   */
  initialBackoffMs?: number;
  /**
   * The longest wait between two failed streams.
   * @default {5_000}
   */
  maxBackoffMs?: number;
  /**
   * Random numbers in [0, 1) for jitter.
   * @default {Math.random}
   */
  random?: () => number;
  /**
   * Whether closing ends the connection with an HTTP/2 GOAWAY. A process that exits right after
   * closing should pass `false` and let the connection end with the process: it loses nothing,
   * and a server of an earlier release (before lib/core/http2_goaway_mitigation.ts) can abort on
   * a GOAWAY it receives (denoland/deno#36788).
   * @default {true}
   */
  gracefulClose?: boolean;
  /**
   * Measures the batch window (monotonic, so a wall-clock step neither closes it early nor
   * stretches it).
   * @default {systemClock}
   */
  clock?: Clock;
}

/** The defaults of {@linkcode MetricsSubmitterOptions}. */
const SUBMITTER_DEFAULTS = {
  maxBuffered: 10_000,
  maxRemembered: 10_000,
  batchSize: 100,
  batchWindowMs: 1_000,
  ackTimeoutMs: 10_000,
  initialBackoffMs: 250,
  maxBackoffMs: 5_000,
  random: Math.random,
  gracefulClose: true,
  clock: systemClock,
};

/**
 * Streams pull attempts to an `aggregate-metrics` server, best effort: `submit` never blocks nor
 * throws, results wait in a bounded buffer while the server is away, and `flush` tells at the
 * end what could not be delivered.
 *
 * @example
 * ```ts
 * import { Logger } from "../../core/log.ts";
 * import { MetricsSubmitter } from "./submitter.ts";
 *
 * // Reports one pulled image and says whether the server acknowledged it.
 * async function reportOne(endpoint: string): Promise<boolean> {
 *   const submitter = new MetricsSubmitter({ endpoint, logger: new Logger() });
 *   submitter.submit({
 *     attemptId: crypto.randomUUID(),
 *     startedAt: Date.now() / 1000,
 *     image: "docker.io/library/debian:12",
 *     node: "node-1",
 *     outcome: "pulled",
 *     attempt: 1,
 *     durationMs: 1200,
 *   });
 *   const report = await submitter.flush(10_000);
 *   return report.delivered === 1;
 * }
 * ```
 */
export class MetricsSubmitter implements AsyncDisposable {
  readonly #options: Required<Omit<MetricsSubmitterOptions, "token">> & { token?: TokenSource };
  readonly #client: grpc.Client;
  readonly #buffer: DeliveryBuffer;
  readonly #closed = new AbortController();
  #serverId?: string;
  #pumping?: Promise<void>;
  #flushing = false;
  #wakeBatch?: () => void;
  #wakeBackoff?: () => void;
  #failures = 0;
  #outage = false;
  #call?: grpc.ClientWritableStream<unknown>;
  /** Whether the server keeps `in-progress` results, as its last answer said. */
  #progress: "unknown" | "accepted" | "refused" = "unknown";

  /** Creates the submitter; it connects when there is something to send. */
  constructor(options: MetricsSubmitterOptions) {
    this.#options = { ...SUBMITTER_DEFAULTS, ...options };
    this.#buffer = new DeliveryBuffer(this.#options);
    this.#client = new MetricsService(options.endpoint, grpc.credentials.createInsecure(), {
      "grpc.initial_reconnect_backoff_ms": 200,
      "grpc.max_reconnect_backoff_ms": 2_000,
    });
  }

  /** Counts so far; `undelivered` includes what is still buffered. */
  get report(): DeliveryReport {
    return this.#buffer.report;
  }

  /** Queues a result for sending. Never blocks, never throws. */
  submit(result: MetricsResult): void {
    if (result.outcome === "in-progress") {
      this.#submitSnapshot(result);
      return;
    }
    // The attempt is over: its last snapshot, if not sent yet, is worth nothing now.
    this.#buffer.forgetSnapshot(result.attemptId);
    if (this.#closed.signal.aborted) {
      this.#buffer.drop();
      return;
    }
    if (this.#buffer.full) {
      if (this.#buffer.drop()) {
        this.#options.logger.warn("metrics buffer full; dropping results until it drains", {
          endpoint: this.#options.endpoint,
          max_buffered: this.#options.maxBuffered,
        });
      }
      return;
    }
    this.#buffer.add(result);
    this.#kick();
  }

  /** Queues an `in-progress` result in place of the attempt's previous one, or drops it. */
  #submitSnapshot(result: MetricsResult): void {
    if (this.#closed.signal.aborted || this.#progress === "refused") return;
    if (this.#buffer.putSnapshot(result)) this.#kick();
  }

  /**
   * Sends what is buffered, for up to `timeoutMs` or until `signal` aborts, then closes the
   * connection.
   *
   * @returns what was delivered in all, and what was not.
   */
  async flush(timeoutMs: number, signal?: AbortSignal): Promise<DeliveryReport> {
    this.#flushing = true;
    this.#wakeBatch?.();
    this.#wakeBackoff?.();
    this.#kick();
    const stop = new AbortController();
    const timeout = this.#options.clock.sleep(
      timeoutMs,
      signal ? AbortSignal.any([signal, stop.signal]) : stop.signal,
    ).catch(() => {});
    await Promise.race([this.#idle(), timeout]);
    stop.abort();
    const report = this.report;
    this.close();
    return report;
  }

  /** Stops sending at once; what is buffered stays undelivered. */
  close(): void {
    if (this.#closed.signal.aborted) return;
    this.#closed.abort();
    this.#call?.cancel();
    // Closing the channel sends the server an HTTP/2 GOAWAY, which aborts a Deno server of an
    // earlier release (denoland/deno#36788); a process about to exit lets its socket end instead.
    if (this.#options.gracefulClose) this.#client.close();
  }

  /** Flushes for up to 10 s and closes. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.flush(10_000);
  }

  async #idle(): Promise<void> {
    while (this.#pumping) await this.#pumping;
  }

  #kick(): void {
    if (this.#wakeBatch) {
      this.#wakeBatch();
      return;
    }
    if (this.#pumping || this.#closed.signal.aborted) return;
    this.#pumping = this.#pump().finally(() => {
      this.#pumping = undefined;
      // A result submitted while the sender was winding down is sent by a new one.
      if (this.#buffer.waiting > 0) this.#kick();
    });
  }

  async #pump(): Promise<void> {
    while (this.#buffer.waiting > 0 && !this.#closed.signal.aborted) {
      const ok = await this.#sendBatch();
      if (ok) {
        this.#failures = 0;
        continue;
      }
      this.#failures++;
      await this.#sleep(backoffDelayMs(this.#failures, this.#options), "backoff");
    }
  }

  /** Waits `ms`, or less when woken (new results for a batch, a flush for a backoff) or closed. */
  #sleep(ms: number, wakeOn: "batch" | "backoff"): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#closed.signal.removeEventListener("abort", done);
        if (wakeOn === "batch") this.#wakeBatch = undefined;
        else this.#wakeBackoff = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#closed.signal.addEventListener("abort", done, { once: true });
      if (wakeOn === "batch") this.#wakeBatch = done;
      else this.#wakeBackoff = done;
    });
  }

  /** Sends one batch; true when the server acknowledged it. */
  async #sendBatch(): Promise<boolean> {
    const opened = this.#options.clock.now();
    const open = this.#openCall();
    await this.#writeBatch(open, opened);
    if (!open.ended) open.call.end();
    const status = await open.status;
    this.#call = undefined;
    const batch = this.#buffer.endBatch();
    this.#learnProgress(status);
    return this.#settle(batch, status);
  }

  /** Opens a `Submit` call with a deadline of the batch window plus the ack timeout. */
  #openCall(): SubmitCall {
    const { batchWindowMs, ackTimeoutMs, token } = this.#options;
    const open = openSubmitCall(this.#client, {
      token,
      // gRPC takes a time of day, and turns it into a timer as the call starts.
      deadline: Date.now() + batchWindowMs + ackTimeoutMs,
    });
    this.#call = open.call;
    return open;
  }

  /**
   * Writes what is buffered, then what arrives, until the batch is full, its window closes, the
   * call ends early, or a flush or close comes.
   */
  async #writeBatch(open: SubmitCall, opened: number): Promise<void> {
    const { batchSize, batchWindowMs } = this.#options;
    while (!open.ended && !this.#closed.signal.aborted) {
      const ask = this.#writeBuffered(open.call);
      const { batch, next } = this.#buffer;
      const full = batch.length >= batchSize || batch.at(-1)?.solo || next?.solo || ask;
      const left = opened + batchWindowMs - this.#options.clock.now();
      if (full || left <= 0 || this.#flushing) break;
      await Promise.race([this.#sleep(left, "batch"), open.status]);
      this.#wakeBatch?.();
    }
  }

  /**
   * Moves buffered entries into the call while the batch has room; a solo entry goes alone.
   *
   * @returns true when a snapshot waits for the server to say whether it keeps them: the batch
   * should end, so that its answer tells.
   */
  #writeBuffered(call: grpc.ClientWritableStream<unknown>): boolean {
    const buffer = this.#buffer;
    while (buffer.waiting > 0 && buffer.batch.length < this.#options.batchSize) {
      const next = buffer.next!;
      if (isSnapshot(next) && this.#progress !== "accepted") {
        if (this.#progress === "refused") {
          buffer.skip();
          continue;
        }
        return true;
      }
      const solo = next.solo;
      if (solo && buffer.batch.length > 0) break;
      call.write(resultToWire(buffer.takeNext().result));
      if (solo) break;
    }
    return false;
  }

  /** Learns from an answer's trailers whether the server keeps `in-progress` results. */
  #learnProgress(status: grpc.StatusObject): void {
    this.#progress = inProgressVerdict(status) ?? this.#progress;
  }

  /**
   * Settles a batch by its answer: acknowledged, refused (given up when alone, else split into
   * solo entries to send again) or failed (sent again after a backoff).
   *
   * @returns true when nothing of the batch is left to retry after a backoff.
   */
  #settle(batch: BufferEntry[], status: grpc.StatusObject): boolean {
    if (status.code === grpc.status.OK) {
      this.#acknowledged(batch, serverIdOf(status));
      return true;
    }
    if (status.code === grpc.status.INVALID_ARGUMENT && this.#refused(batch, status)) return true;
    this.#buffer.putBack(batch);
    if (status.code === grpc.status.PERMISSION_DENIED) {
      this.#forbidden(status);
      return true;
    }
    this.#failed(status);
    return false;
  }

  /**
   * The server does not let this node report (another service account's token, a token of
   * another node): no retry would change that within the run, so nothing more is sent and what
   * is buffered stays undelivered.
   */
  #forbidden(status: grpc.StatusObject): void {
    this.#options.logger.error(
      "the metrics server does not let this node report; sending it nothing more this run",
      {
        endpoint: this.#options.endpoint,
        error: status.details,
        fix: "give the node the token the server expects (see the README's security model)",
        undelivered: this.#buffer.waiting,
      },
    );
    this.close();
  }

  /**
   * A batch the server refused as invalid: a solo entry is given up (a snapshot silently, a
   * result counted as rejected); the entries of a larger batch are marked to go alone.
   *
   * @returns true when the entry was given up.
   */
  #refused(batch: BufferEntry[], status: grpc.StatusObject): boolean {
    if (batch.length === 1 && batch[0].solo && isSnapshot(batch[0])) {
      this.#options.logger.debug("the metrics server refused an in-progress result", {
        endpoint: this.#options.endpoint,
        image: batch[0].result.image,
        attempt_id: batch[0].result.attemptId,
        error: status.details,
      });
      return true;
    }
    if (batch.length === 1 && batch[0].solo) {
      this.#buffer.reject();
      this.#options.logger.warn("the metrics server refused a result; giving it up", {
        endpoint: this.#options.endpoint,
        image: batch[0].result.image,
        attempt_id: batch[0].result.attemptId,
        error: status.details,
      });
      return true;
    }
    for (const entry of batch) entry.solo = true;
    return false;
  }

  /** Says once per outage that a batch (back in front of the buffer) was not delivered. */
  #failed(status: grpc.StatusObject): void {
    if (!this.#outage && !this.#closed.signal.aborted) {
      this.#outage = true;
      this.#options.logger.warn("cannot deliver metrics; buffering and retrying", {
        endpoint: this.#options.endpoint,
        code: grpc.status[status.code],
        error: status.details,
        buffered: this.#buffer.waiting,
      });
    }
  }

  /** Counts and remembers a delivered batch, and sends again what a restarted server lost. */
  #acknowledged(batch: BufferEntry[], serverId: string): void {
    if (this.#outage) {
      this.#outage = false;
      this.#options.logger.info("metrics delivered again", {
        endpoint: this.#options.endpoint,
        buffered: this.#buffer.waiting,
      });
    }
    this.#buffer.delivered(batch);
    if (serverId && this.#serverId && serverId !== this.#serverId) this.#resendAll(batch);
    if (serverId) this.#serverId = serverId;
  }

  /** The server restarted (its memory is gone): queues every remembered result but `batch`. */
  #resendAll(batch: BufferEntry[]): void {
    const results = this.#buffer.resendRemembered(batch);
    this.#options.logger.info("the metrics server restarted; sending its results again", {
      endpoint: this.#options.endpoint,
      results,
    });
  }
}

/** The wait after `failures` failed streams in a row: doubling from the first, capped, ±20%. */
function backoffDelayMs(
  failures: number,
  options: Required<Pick<MetricsSubmitterOptions, "initialBackoffMs" | "maxBackoffMs" | "random">>,
): number {
  const base = Math.min(options.maxBackoffMs, options.initialBackoffMs * 2 ** (failures - 1));
  return base * (0.8 + 0.4 * options.random());
}
