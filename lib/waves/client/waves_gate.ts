/**
 * A node's gate to cluster-wide waves: the pull scheduler asks it before each attempt
 * ({@linkcode WavesGate.admit}) and tells it how the attempt went; the gate batches all of that
 * into one `/Waves/Admit` exchange at a time, and asks again while something waits.
 *
 * Never wedged by the coordinator: when it has not answered for `maxWaitMs` (unreachable, slow,
 * restarting), every waiting image is let through and so is every new one until it answers
 * again; when it refuses for good (no waves, wrong token), the gate lets everything through for
 * the rest of the run. Each of these is reported once through `onEvent`.
 *
 * @module
 */
import { type Clock, systemClock } from "../../core/clock.ts";
import { formatDuration } from "../../core/duration.ts";
import type { WireAdmitRequest, WireAdmitResponse, WireFailure } from "../protocol.ts";
import { WavesRefusedError } from "./waves_client.ts";

/** What the gate tells its owner, for the log. */
export type GateEvent =
  | { type: "waiting"; image: string; reason: string }
  | { type: "admitted"; image: string; firstWave: boolean; waitedMs: number }
  | { type: "unreachable"; waitedMs: number; error: string; released: number }
  | { type: "reachable"; serverId: string; restarted: boolean }
  | { type: "refused"; error: string };

/** Options for {@linkcode WavesGate}. */
export interface WavesGateOptions {
  /** This node's name. */
  node: string;
  /** One exchange with the coordinator (a {@linkcode WavesClient}'s `admit`). */
  exchange(request: WireAdmitRequest, signal: AbortSignal): Promise<WireAdmitResponse>;
  /** The longest an image waits while the coordinator does not answer. */
  maxWaitMs: number;
  /**
   * The longest one exchange may take; a slower one counts as no answer.
   * @default {5_000}
   */
  callTimeoutMs?: number;
  /**
   * Renew the lease of every admitted image at every exchange, for runtimes whose progress
   * cannot be watched; otherwise only images that reported progress are renewed.
   * @default {false}
   */
  renewWithoutProgress?: boolean;
  /** Receives what is worth a log line. */
  onEvent?: (event: GateEvent) => void;
  /**
   * Time and waits.
   * @default {systemClock}
   */
  clock?: Clock;
}

interface Want {
  since: number;
  reason?: string;
  resolve(): void;
}

/** Batches a node's questions and news to the coordinator. */
export class WavesGate {
  readonly #options: WavesGateOptions;
  readonly #clock: Clock;
  readonly #wants = new Map<string, Want>();
  readonly #admitted = new Set<string>();
  /** Admitted images whose pull has not started yet: renewed at every exchange. */
  readonly #starting = new Set<string>();
  readonly #progressed = new Set<string>();
  readonly #have = { pulled: new Set<string>(), present: new Set<string>() };
  #news = emptyNews();
  #serverId?: string;
  #fullReport = true;
  #lastAnswer: number;
  /** News sent in the exchange in flight, not yet acknowledged. */
  #sending = false;
  #down = false;
  #refused = false;
  #looping = false;
  #wake?: () => void;
  /** A flush has begun: what is unsaid goes at once, not after the coordinator's pacing. */
  #flushing = false;
  readonly #closed = new AbortController();

  /** Creates the gate; nothing is sent until the first question. */
  constructor(options: WavesGateOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#lastAnswer = this.#clock.now();
  }

  /**
   * Resolves when `image` may be pulled: the coordinator admitted it, or did not answer for
   * `maxWaitMs`, or refused to coordinate. Rejects when `signal` aborts.
   */
  admit(image: string, signal: AbortSignal): Promise<void> {
    if (this.#refused || this.#down || this.#closed.signal.aborted) return Promise.resolve();
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        this.#wants.delete(image);
        reject(signal.reason);
      };
      this.#wants.set(image, {
        since: this.#clock.now(),
        resolve: () => {
          signal.removeEventListener("abort", onAbort);
          this.#wants.delete(image);
          this.#giveBackOnAbort(image, signal);
          resolve();
        },
      });
      signal.addEventListener("abort", onAbort, { once: true });
      this.#kick();
    });
  }

  /**
   * The pull of `image` starts (the node's slot and credentials are there): from now on only its
   * progress renews its lease.
   */
  started(image: string): void {
    this.#starting.delete(image);
  }

  /** The pull of `image` received bytes: its lease is renewed at the next exchange. */
  progressed(image: string): void {
    if (this.#admitted.has(image)) this.#progressed.add(image);
  }

  /** `image` is on the node, pulled or found present. */
  landed(image: string, options: { pulled: boolean }): void {
    this.#admitted.delete(image);
    this.#starting.delete(image);
    this.#progressed.delete(image);
    const kind = options.pulled ? "pulled" : "present";
    this.#have[kind].add(image);
    this.#news[kind].push(image);
    this.#kick();
  }

  /**
   * The pull of `image` failed; a 429 (`rateLimited`) also lowers its registry's bound, and a
   * failure retrying cannot fix (`permanent`) lets the other nodes learn it at once.
   */
  failed(image: string, options: { rateLimited: boolean; permanent?: boolean }): void {
    this.#admitted.delete(image);
    this.#starting.delete(image);
    this.#progressed.delete(image);
    this.#news.failed.push({
      image,
      rate_limited: options.rateLimited,
      permanent: options.permanent ?? false,
    });
    this.#kick();
  }

  /**
   * Sends the news (images landed, pulls failed) without waiting for the coordinator's pacing,
   * and waits for it to arrive: up to `timeoutMs` in all, and past `patienceMs` only while an
   * exchange carrying news is in flight. So a
   * coordinator that is slow to answer (thousands of nodes finishing at once) still hears which
   * nodes hold an image, and one that is gone costs `patienceMs`.
   */
  async flush(timeoutMs: number, patienceMs: number = timeoutMs): Promise<void> {
    this.#flushing = true;
    const start = this.#clock.now();
    const deadline = start + timeoutMs;
    const patience = start + patienceMs;
    while (
      (this.#hasNews() || this.#sending) && !this.#refused && !this.#closed.signal.aborted &&
      this.#clock.now() < deadline &&
      (this.#clock.now() < patience || this.#sending)
    ) {
      await this.#clock.sleep(Math.min(50, deadline - this.#clock.now()));
    }
  }

  /** Stops asking; waiting images are let through. */
  close(): void {
    this.#closed.abort();
    for (const want of [...this.#wants.values()]) want.resolve();
    this.#wake?.();
  }

  /** An admitted image whose run stops before its pull starts gives its lease back. */
  #giveBackOnAbort(image: string, signal: AbortSignal): void {
    if (!this.#starting.has(image)) return;
    signal.addEventListener("abort", () => {
      if (!this.#starting.delete(image)) return;
      this.#admitted.delete(image);
      this.#news.released.push(image);
      this.#kick();
    }, { once: true });
  }

  #kick(): void {
    if (this.#refused || this.#closed.signal.aborted) return;
    if (this.#looping) {
      this.#wake?.();
      return;
    }
    this.#looping = true;
    // The coordinator was not asked while idle: its silence counts from now.
    if (!this.#down) this.#lastAnswer = Math.max(this.#lastAnswer, this.#clock.now());
    // A macrotask later, so that images asking at the same moment share one exchange.
    setTimeout(() => this.#loop().finally(() => this.#looping = false), 0);
  }

  async #loop(): Promise<void> {
    while (!this.#refused && !this.#closed.signal.aborted && this.#busy()) {
      const delayMs = await this.#exchangeOnce();
      if (delayMs > 0 && this.#busy()) await this.#pause(delayMs);
    }
  }

  #busy(): boolean {
    return this.#wants.size > 0 || this.#admitted.size > 0 || this.#hasNews();
  }

  #hasNews(): boolean {
    const news = this.#news;
    return news.pulled.length + news.present.length + news.failed.length +
        news.released.length > 0;
  }

  /** One exchange; returns how long to wait before the next. */
  async #exchangeOnce(): Promise<number> {
    const request = this.#request();
    const sent = this.#news;
    this.#news = emptyNews();
    this.#sending = sent.pulled.length + sent.present.length + sent.failed.length +
        sent.released.length > 0;
    const call = new AbortController();
    const timeoutMs = Math.min(this.#options.callTimeoutMs ?? 5_000, this.#options.maxWaitMs);
    this.#clock.sleep(timeoutMs, call.signal).then(
      () => call.abort(new Error(`no answer within ${formatDuration(timeoutMs)}`)),
      () => {},
    );
    try {
      const response = await this.#options.exchange(request, call.signal);
      this.#answered(request, response);
      return this.#fullReport || (this.#flushing && this.#hasNews())
        ? 0
        : response.retry_after_ms || 1_000;
    } catch (error) {
      // Not delivered: keep the news for the next exchange.
      this.#news.pulled.unshift(...sent.pulled);
      this.#news.present.unshift(...sent.present);
      this.#news.failed.unshift(...sent.failed);
      this.#news.released.unshift(...sent.released);
      this.#noAnswer(error);
      return 1_000;
    } finally {
      this.#sending = false;
      call.abort();
    }
  }

  #request(): WireAdmitRequest {
    const full = this.#fullReport;
    const progressed = full || this.#options.renewWithoutProgress
      ? [...this.#admitted]
      : [...new Set([...this.#progressed, ...this.#starting])];
    this.#progressed.clear();
    return {
      node: this.#options.node,
      want: [...this.#wants.keys()],
      progressed,
      pulled: full ? [...this.#have.pulled] : [...this.#news.pulled],
      present: full ? [...this.#have.present] : [...this.#news.present],
      failed: [...this.#news.failed],
      full_report: full,
      released: [...this.#news.released],
    };
  }

  #answered(request: WireAdmitRequest, response: WireAdmitResponse): void {
    this.#lastAnswer = this.#clock.now();
    const restarted = this.#serverId !== undefined && this.#serverId !== response.server_id;
    if (this.#down || this.#serverId !== response.server_id) {
      this.#options.onEvent?.({ type: "reachable", serverId: response.server_id, restarted });
    }
    this.#down = false;
    // A new coordinator has not heard our full report yet: send it before anything else.
    this.#fullReport = restarted;
    this.#serverId = response.server_id;
    request.want.forEach((image, i) => {
      const want = this.#wants.get(image);
      const decision = response.decisions[i];
      if (!want || !decision) return;
      if (decision.pull) {
        this.#admitted.add(image);
        this.#starting.add(image);
        const waitedMs = this.#clock.now() - want.since;
        this.#options.onEvent?.({
          type: "admitted",
          image,
          firstWave: decision.first_wave,
          waitedMs,
        });
        want.resolve();
      } else if (want.reason !== decision.wait_reason) {
        want.reason = decision.wait_reason;
        this.#options.onEvent?.({ type: "waiting", image, reason: decision.wait_reason });
      }
    });
  }

  #noAnswer(error: unknown): void {
    const message = error instanceof Error ? error.message : String(error);
    if (error instanceof WavesRefusedError) {
      this.#refused = true;
      this.#options.onEvent?.({ type: "refused", error: message });
      for (const want of [...this.#wants.values()]) want.resolve();
      return;
    }
    const waitedMs = this.#clock.now() - this.#lastAnswer;
    if (this.#down || waitedMs < this.#options.maxWaitMs) return;
    this.#down = true;
    const released = this.#wants.size;
    for (const want of [...this.#wants.values()]) want.resolve();
    this.#options.onEvent?.({ type: "unreachable", waitedMs, error: message, released });
  }

  #pause(ms: number): Promise<void> {
    const wake = new AbortController();
    this.#wake = () => wake.abort();
    const signal = AbortSignal.any([wake.signal, this.#closed.signal]);
    return this.#clock.sleep(ms, signal).catch(() => {}).finally(() => this.#wake = undefined);
  }
}

function emptyNews() {
  return {
    pulled: [] as string[],
    present: [] as string[],
    failed: [] as WireFailure[],
    released: [] as string[],
  };
}
