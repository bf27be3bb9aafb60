/**
 * The metrics submitter's buffer: results waiting to be sent, the ones written to the batch open
 * now, the delivered ones remembered to send again to a restarted server, and the counts of the
 * {@linkcode DeliveryReport}. It decides nothing about the network; the submitter moves entries
 * through it.
 *
 * @module
 */
import type { DeliveryReport } from "../../pull/reporter.ts";
import type { MetricsResult } from "../protocol.ts";

/** One result in the buffer. */
export interface BufferEntry {
  /** The result. */
  result: MetricsResult;
  /** A server acknowledged it (it is only sent again to a restarted server). */
  acked: boolean;
  /** Send alone: its batch was refused as invalid. */
  solo: boolean;
}

/** Options for {@linkcode DeliveryBuffer}. */
export interface DeliveryBufferOptions {
  /** The most results held while not acknowledged, waiting and in the open batch. */
  maxBuffered: number;
  /** Delivered results kept to send again to a restarted server. */
  maxRemembered: number;
}

/** Whether an entry is an `in-progress` snapshot (best effort, never counted). */
export function isSnapshot(entry: BufferEntry): boolean {
  return entry.result.outcome === "in-progress";
}

/**
 * Results between `submit` and the server's acknowledgement, in order, and what became of them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DeliveryBuffer } from "./delivery_buffer.ts";
 *
 * const buffer = new DeliveryBuffer({ maxBuffered: 10, maxRemembered: 10 });
 * buffer.add({
 *   attemptId: "a-1",
 *   startedAt: 0,
 *   image: "docker.io/library/debian:12",
 *   node: "node-1",
 *   outcome: "pulled",
 *   attempt: 1,
 *   durationMs: 1200,
 * });
 * buffer.takeNext();
 * buffer.delivered(buffer.endBatch());
 * assert.deepEqual(buffer.report, { delivered: 1, undelivered: 0, dropped: 0, rejected: 0 });
 * ```
 */
export class DeliveryBuffer {
  readonly #options: DeliveryBufferOptions;
  readonly #queue: BufferEntry[] = [];
  readonly #batch: BufferEntry[] = [];
  /** The snapshots waiting in the queue, by attempt id (at most one each). */
  readonly #waitingSnapshots = new Map<string, BufferEntry>();
  /** Delivered results by attempt id, least recently delivered first. */
  readonly #remembered = new Map<string, BufferEntry>();
  #delivered = 0;
  #dropped = 0;
  #rejected = 0;

  /** Creates an empty buffer. */
  constructor(options: DeliveryBufferOptions) {
    this.#options = options;
  }

  /** How many entries wait to be sent (the open batch's not included). */
  get waiting(): number {
    return this.#queue.length;
  }

  /** The entry to send next, if any. */
  get next(): BufferEntry | undefined {
    return this.#queue[0];
  }

  /** The entries written to the batch open now. */
  get batch(): readonly BufferEntry[] {
    return this.#batch;
  }

  /** Whether no result fits any more (waiting and open batch together). */
  get full(): boolean {
    return this.#queue.length + this.#batch.length >= this.#options.maxBuffered;
  }

  /** Counts so far; `undelivered` includes what is still buffered (snapshots never count). */
  get report(): DeliveryReport {
    const counted = (e: BufferEntry) => !e.acked && !isSnapshot(e);
    const buffered = this.#queue.filter(counted).length + this.#batch.filter(counted).length;
    return {
      delivered: this.#delivered,
      undelivered: buffered + this.#dropped + this.#rejected,
      dropped: this.#dropped,
      rejected: this.#rejected,
    };
  }

  /** Queues a result (the caller checks {@linkcode DeliveryBuffer.full} first). */
  add(result: MetricsResult): void {
    this.#queue.push({ result, acked: false, solo: false });
  }

  /**
   * Queues a snapshot in place of its attempt's waiting one, or at the end if there is room.
   *
   * @returns false when it was dropped for want of room.
   */
  putSnapshot(result: MetricsResult): boolean {
    const waiting = this.#waitingSnapshots.get(result.attemptId);
    if (waiting) {
      waiting.result = result;
      return true;
    }
    if (this.full) return false;
    const entry = { result, acked: false, solo: false };
    this.#queue.push(entry);
    this.#waitingSnapshots.set(result.attemptId, entry);
    return true;
  }

  /** Forgets the attempt's waiting snapshot, if any: its finished result makes it worthless. */
  forgetSnapshot(attemptId: string): void {
    const waiting = this.#waitingSnapshots.get(attemptId);
    if (!waiting) return;
    this.#waitingSnapshots.delete(attemptId);
    this.#queue.splice(this.#queue.indexOf(waiting), 1);
  }

  /**
   * Counts a result dropped (buffer full or submitter closed).
   *
   * @returns true for the first one dropped.
   */
  drop(): boolean {
    return this.#dropped++ === 0;
  }

  /** Drops the next entry unsent. */
  skip(): void {
    this.#unqueued(this.#queue.shift());
  }

  /** Moves the next entry into the open batch, and returns it to be written. */
  takeNext(): BufferEntry {
    const entry = this.#queue.shift()!;
    this.#unqueued(entry);
    this.#batch.push(entry);
    return entry;
  }

  /** Closes the open batch, and returns its entries to settle. */
  endBatch(): BufferEntry[] {
    return this.#batch.splice(0);
  }

  /**
   * Puts a batch that was not delivered back in front, to be sent again; a snapshot of an attempt
   * with a newer one waiting is left out.
   */
  putBack(batch: BufferEntry[]): void {
    const back = batch.filter((entry) => {
      if (!isSnapshot(entry)) return true;
      if (this.#waitingSnapshots.has(entry.result.attemptId)) return false;
      this.#waitingSnapshots.set(entry.result.attemptId, entry);
      return true;
    });
    this.#queue.unshift(...back);
  }

  /** Counts a result the server refused on its own; it is given up. */
  reject(): void {
    this.#rejected++;
  }

  /** Counts a batch's results as delivered and remembers them, the latest `maxRemembered`. */
  delivered(batch: BufferEntry[]): void {
    for (const entry of batch) {
      // A snapshot is stale once delivered: nothing to count, nothing to send again.
      if (isSnapshot(entry)) continue;
      if (!entry.acked) this.#delivered++;
      entry.acked = true;
      entry.solo = false;
      this.#remembered.delete(entry.result.attemptId);
      this.#remembered.set(entry.result.attemptId, entry);
    }
    while (this.#remembered.size > this.#options.maxRemembered) {
      this.#remembered.delete(this.#remembered.keys().next().value!);
    }
  }

  /**
   * Queues every remembered result again but `except`'s (a restarted server lost them).
   *
   * @returns how many were queued.
   */
  resendRemembered(except: BufferEntry[]): number {
    const again = [...this.#remembered.values()].filter((entry) => !except.includes(entry));
    this.#queue.push(...again);
    return again.length;
  }

  /** Keeps the index of waiting snapshots true once `entry` has left the queue. */
  #unqueued(entry: BufferEntry | undefined): void {
    if (entry && isSnapshot(entry)) this.#waitingSnapshots.delete(entry.result.attemptId);
  }
}
