/**
 * One pull attempt as the metrics pipeline carries it: the TypeScript shape, its conversion to
 * and from the `Result` message of `proto/metrics.proto`, its validation, and the snake_case JSON
 * that `GET /metrics` serves (the original tool's format).
 *
 * It also holds the rest of the wire contract that clients and servers share: the `Metrics`
 * service constructor and the trailing-metadata keys by which a server describes itself.
 *
 * @module
 */
import type * as grpc from "@grpc/grpc-js";
import metricsProto from "../../proto/metrics.proto" with { type: "text" };
import { loadProto, serviceConstructor } from "../core/proto.ts";

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

/**
 * How an attempt ended:
 * - `pulled`: the attempt pulled the image (final: the image is on the node);
 * - `present`: the image was already on the node and was not pulled (final; `attempt` is 0);
 * - `attempt-failed`: the attempt failed and another one will follow (not final);
 * - `failed`: the image failed on the node for this run, no attempt follows (final);
 * - `in-progress`: not an ending but a snapshot of an attempt still downloading, under the
 *   attempt's own id; the attempt's finished result supersedes it, and it never counts as an
 *   attempt.
 */
export type Outcome = "pulled" | "present" | "attempt-failed" | "failed" | "in-progress";

/** How an attempt ended: every {@linkcode Outcome} but `in-progress`. */
export type AttemptOutcome = Exclude<Outcome, "in-progress">;

/** Every {@linkcode AttemptOutcome}, in the order reports list them. */
export const OUTCOMES: readonly AttemptOutcome[] = [
  "pulled",
  "present",
  "attempt-failed",
  "failed",
];

/** One pull attempt of one image on one node. */
export interface MetricsResult {
  /** Unique per attempt; the server keeps one result per id. */
  attemptId: string;
  /** When the attempt started, in seconds since the Unix epoch. */
  startedAt: number;
  /** The normalised image reference. */
  image: string;
  /** The Kubernetes node the attempt ran on. */
  node: string;
  /** How the attempt ended. */
  outcome: Outcome;
  /** 1 for the first pull attempt of the image in a run; 0 for `present`. */
  attempt: number;
  /** How long the attempt took, in milliseconds (`in-progress`: so far). */
  durationMs: number;
  /** Why the attempt failed. */
  error?: string;
  /** The image's size as the runtime reports it. */
  sizeBytes?: number;
  /** The reference the runtime stored the image under. */
  imageRef?: string;
  /** The prefetcher instance (the DaemonSet's name). */
  instance?: string;
  /** How many distinct images the node's run has; 0 or absent when unknown. */
  imagesTotal?: number;
  /** Bytes the attempt received (`in-progress`: so far), when its progress was watched. */
  bytesReceived?: number;
  /** The download rate in bytes per second (`in-progress`: the recent one). */
  throughputBytesPerSecond?: number;
  /** `in-progress`: the image's total bytes, when known. */
  totalBytes?: number;
  /** `in-progress`: bytes of the image already in the node's content store, by any attempt. */
  storedBytes?: number;
  /** The client's run (one `fetch` run), the same on every result of it; absent from old clients. */
  runId?: string;
}

/** The `Result` message as grpc-js hands it over (field names as in the `.proto` file). */
export interface WireResult {
  attempt_id: string;
  started_at: number;
  image: string;
  error: string;
  duration_ms: number;
  node: string;
  size_bytes: number;
  attempt: number;
  outcome: string | number;
  image_ref: string;
  instance: string;
  bytes_received: number;
  throughput_bytes_per_second: number;
  images_total: number;
  total_bytes: number;
  stored_bytes: number;
  run_id: string;
}

/** A result as `GET /metrics` serves it: snake_case keys, empty fields left out. */
export type MetricsResultJson = Partial<Record<keyof WireResult, string | number>>;

/** The longest strings a result may carry; longer ones are rejected (or, when sent, cut). */
export const RESULT_LIMITS = Object.freeze({
  attemptId: 128,
  image: 1024,
  node: 253,
  instance: 253,
  imageRef: 1024,
  error: 4096,
  runId: 128,
});

const WIRE_OUTCOMES: Record<Outcome, string> = {
  pulled: "OUTCOME_PULLED",
  present: "OUTCOME_PRESENT",
  "attempt-failed": "OUTCOME_ATTEMPT_FAILED",
  failed: "OUTCOME_FAILED",
  "in-progress": "OUTCOME_IN_PROGRESS",
};
const OUTCOME_BY_WIRE: Record<string, Outcome> = Object.fromEntries(
  Object.entries(WIRE_OUTCOMES).map(([outcome, wire]) => [wire, outcome as Outcome]),
);
const OUTCOME_BY_NUMBER: Record<number, Outcome | undefined> = {
  1: "pulled",
  2: "present",
  3: "attempt-failed",
  4: "failed",
  5: "in-progress",
};

/** A received result breaks the wire contract; `kind` names the rule, for logging once per kind. */
export class InvalidResultError extends Error {
  /** Which rule the result broke, e.g. `attempt_id-missing`. */
  readonly kind: string;

  /** Creates the error for a result that broke rule `kind`. */
  constructor(kind: string, message: string) {
    super(message);
    this.name = "InvalidResultError";
    this.kind = kind;
  }
}

/**
 * Checks a received `Result` and turns it into a {@linkcode MetricsResult}. A result without an
 * outcome (the original tool's clients) is `pulled` when it has no error, `attempt-failed` when it
 * has one. Strings are copied out of the decoding buffer's reach and `intern` lets the caller
 * share equal node and image strings.
 *
 * @throws {InvalidResultError} when a field is missing, too long or out of range.
 */
export function resultFromWire(
  wire: Partial<WireResult>,
  intern: (text: string) => string = (text) => text,
): MetricsResult {
  const attemptId = text(wire.attempt_id, "attempt_id", RESULT_LIMITS.attemptId);
  const image = text(wire.image, "image", RESULT_LIMITS.image);
  if (!attemptId) throw new InvalidResultError("attempt_id-missing", "attempt_id is empty");
  if (!image) throw new InvalidResultError("image-missing", `result ${attemptId} has no image`);
  const error = text(wire.error, "error", RESULT_LIMITS.error);
  let outcome: Outcome;
  const wireOutcome = wire.outcome ?? 0;
  if (wireOutcome === 0 || wireOutcome === "OUTCOME_UNSPECIFIED") {
    outcome = error ? "attempt-failed" : "pulled";
  } else {
    const known = typeof wireOutcome === "number"
      ? OUTCOME_BY_NUMBER[wireOutcome]
      : OUTCOME_BY_WIRE[wireOutcome];
    if (!known) {
      throw new InvalidResultError(
        "outcome-unknown",
        `result ${attemptId} has an unknown outcome ${wireOutcome}`,
      );
    }
    outcome = known;
  }
  const result: MetricsResult = {
    attemptId,
    startedAt: count(wire.started_at, "started_at"),
    image: intern(image),
    node: intern(text(wire.node, "node", RESULT_LIMITS.node)),
    outcome,
    attempt: count(wire.attempt, "attempt"),
    durationMs: count(wire.duration_ms, "duration_ms"),
  };
  if (error) result.error = error;
  const sizeBytes = count(wire.size_bytes, "size_bytes");
  if (sizeBytes) result.sizeBytes = sizeBytes;
  const imageRef = text(wire.image_ref, "image_ref", RESULT_LIMITS.imageRef);
  if (imageRef) result.imageRef = intern(imageRef);
  const instance = text(wire.instance, "instance", RESULT_LIMITS.instance);
  if (instance) result.instance = intern(instance);
  const imagesTotal = count(wire.images_total, "images_total");
  if (imagesTotal) result.imagesTotal = imagesTotal;
  const bytesReceived = count(wire.bytes_received, "bytes_received");
  if (bytesReceived) result.bytesReceived = bytesReceived;
  const rate = count(wire.throughput_bytes_per_second, "throughput_bytes_per_second");
  if (rate) result.throughputBytesPerSecond = rate;
  const totalBytes = count(wire.total_bytes, "total_bytes");
  if (totalBytes) result.totalBytes = totalBytes;
  const storedBytes = count(wire.stored_bytes, "stored_bytes");
  if (storedBytes) result.storedBytes = storedBytes;
  const runId = text(wire.run_id, "run_id", RESULT_LIMITS.runId);
  if (runId) result.runId = runId;
  return result;
}

/** Turns a result into the `Result` message, cutting an over-long error to fit the limits. */
export function resultToWire(result: MetricsResult): WireResult {
  const error = result.error ?? "";
  return {
    attempt_id: result.attemptId,
    started_at: Math.floor(result.startedAt),
    image: result.image,
    error: error.length > RESULT_LIMITS.error
      ? error.slice(0, RESULT_LIMITS.error - 1) + "…"
      : error,
    duration_ms: Math.max(0, Math.round(result.durationMs)),
    node: result.node,
    size_bytes: result.sizeBytes ?? 0,
    attempt: result.attempt,
    outcome: WIRE_OUTCOMES[result.outcome],
    image_ref: result.imageRef ?? "",
    instance: result.instance ?? "",
    bytes_received: result.bytesReceived ?? 0,
    throughput_bytes_per_second: result.throughputBytesPerSecond ?? 0,
    images_total: result.imagesTotal ?? 0,
    total_bytes: result.totalBytes ?? 0,
    stored_bytes: result.storedBytes ?? 0,
    run_id: result.runId ?? "",
  };
}

/**
 * Turns a result into the JSON object of `GET /metrics`: the `.proto` field names, empty
 * strings and zero numbers left out (as the original served them), numbers as JSON numbers and
 * the outcome as its lower-case name (`pulled`, `present`, `attempt-failed`, `failed`,
 * `in-progress`).
 */
export function resultToJson(result: MetricsResult): MetricsResultJson {
  const json: MetricsResultJson = { attempt_id: result.attemptId };
  if (result.startedAt) json.started_at = result.startedAt;
  json.image = result.image;
  if (result.error) json.error = result.error;
  if (result.durationMs) json.duration_ms = result.durationMs;
  if (result.node) json.node = result.node;
  if (result.sizeBytes) json.size_bytes = result.sizeBytes;
  if (result.attempt) json.attempt = result.attempt;
  json.outcome = result.outcome;
  if (result.imageRef) json.image_ref = result.imageRef;
  if (result.instance) json.instance = result.instance;
  if (result.bytesReceived) json.bytes_received = result.bytesReceived;
  if (result.throughputBytesPerSecond) {
    json.throughput_bytes_per_second = result.throughputBytesPerSecond;
  }
  if (result.imagesTotal) json.images_total = result.imagesTotal;
  if (result.totalBytes) json.total_bytes = result.totalBytes;
  if (result.storedBytes) json.stored_bytes = result.storedBytes;
  if (result.runId) json.run_id = result.runId;
  return json;
}

/** Whether an outcome ends the image on its node (`pulled`, `present`, `failed`). */
export function isFinal(outcome: Outcome): boolean {
  return outcome !== "attempt-failed" && outcome !== "in-progress";
}

function text(value: unknown, field: string, max: number): string {
  if (value === undefined || value === null) return "";
  if (typeof value !== "string") {
    throw new InvalidResultError(`${field}-type`, `${field} is not a string`);
  }
  if (value.length > max) {
    throw new InvalidResultError(
      `${field}-too-long`,
      `${field} is ${value.length} characters long; at most ${max} are accepted`,
    );
  }
  return value;
}

function count(value: unknown, field: string): number {
  if (value === undefined || value === null) return 0;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new InvalidResultError(
      `${field}-range`,
      `${field} is ${String(value)}; it must be a whole number from 0 to 2^53`,
    );
  }
  return value;
}
