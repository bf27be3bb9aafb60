/**
 * How `fetch` logs the pull scheduler's events: one line per event, naming the image, the
 * attempt, its timeout and the elapsed time.
 *
 * @module
 */
import { formatDuration } from "../core/duration.ts";
import { formatBytes, type Logger } from "../core/log.ts";
import type { PullEvent } from "./scheduler.ts";

function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(Math.round(bytesPerSecond))}/s`;
}

/** Logs one scheduler event as one line. */
export function logPullEvent(logger: Logger, event: PullEvent): void {
  switch (event.type) {
    case "present":
      logger.info("image already present", {
        image: event.image,
        size: formatBytes(event.sizeBytes),
        elapsed: formatDuration(event.elapsedMs),
      });
      break;
    case "attempt-started":
      logger.info("pull attempt started", {
        image: event.image,
        attempt: event.attempt,
        timeout: formatDuration(event.timeoutMs),
        elapsed: formatDuration(event.elapsedMs),
        attempt_id: event.attemptId,
      });
      break;
    case "attempt-finished":
      logAttemptFinished(logger, event);
      break;
    case "progress":
      logProgress(logger, event);
      break;
    case "retry-scheduled":
      logger.info(
        event.renewCredentials
          ? "the registry refused the plugins' credentials; retrying at once with renewed ones"
          : "retrying after a delay",
        {
          image: event.image,
          attempt: event.attempt + 1,
          delay: formatDuration(event.delayMs),
          elapsed: formatDuration(event.elapsedMs),
        },
      );
      break;
    case "image-done":
      logImageDone(logger, event);
      break;
  }
}

type EventOf<T extends PullEvent["type"]> = Extract<PullEvent, { type: T }>;

/** "image pulled", or "pull attempt failed" with the error. */
function logAttemptFinished(logger: Logger, event: EventOf<"attempt-finished">): void {
  const common = {
    image: event.image,
    attempt: event.attempt,
    timeout: formatDuration(event.timeoutMs),
    duration: formatDuration(event.durationMs),
  };
  const received = event.receivedBytes === undefined ? undefined : formatBytes(event.receivedBytes);
  const tail = { elapsed: formatDuration(event.elapsedMs), attempt_id: event.attemptId };
  if (event.error !== undefined) {
    logger.warn("pull attempt failed", { ...common, error: event.error, received, ...tail });
    return;
  }
  logger.info("image pulled", {
    ...common,
    size: event.sizeBytes === undefined ? undefined : formatBytes(event.sizeBytes),
    received,
    rate: event.bytesPerSecond === undefined ? undefined : formatRate(event.bytesPerSecond),
    ...tail,
  });
}

/** "pull progress": received, stored, total, rate and, when the total is known, the time left. */
function logProgress(logger: Logger, event: EventOf<"progress">): void {
  const { receivedBytes, storedBytes, totalBytes, bytesPerSecond } = event.progress;
  const left = totalBytes === undefined ? undefined : Math.max(0, totalBytes - storedBytes);
  logger.info("pull progress", {
    image: event.image,
    attempt: event.attempt,
    received: formatBytes(receivedBytes),
    stored: formatBytes(storedBytes),
    total: totalBytes === undefined ? undefined : formatBytes(totalBytes),
    rate: formatRate(bytesPerSecond),
    eta: left !== undefined && bytesPerSecond > 0
      ? formatDuration(Math.round((left / bytesPerSecond) * 1000))
      : undefined,
    elapsed: formatDuration(event.elapsedMs),
  });
}

/** "image failed" with why; a pulled or present image was logged already. */
function logImageDone(logger: Logger, event: EventOf<"image-done">): void {
  if (event.result.status !== "failed") return;
  logger.error("image failed", {
    image: event.result.image,
    attempts: event.result.attempts,
    reason: event.result.failure,
    error: event.result.error,
    elapsed: formatDuration(event.result.elapsedMs),
  });
}
