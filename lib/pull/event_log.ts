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
  const elapsed = formatDuration(
    event.type === "image-done" ? event.result.elapsedMs : event.elapsedMs,
  );
  switch (event.type) {
    case "present":
      logger.info("image already present", {
        image: event.image,
        size: formatBytes(event.sizeBytes),
        elapsed,
      });
      break;
    case "attempt-started":
      logger.info("pull attempt started", {
        image: event.image,
        attempt: event.attempt,
        timeout: formatDuration(event.timeoutMs),
        elapsed,
        attempt_id: event.attemptId,
      });
      break;
    case "attempt-finished":
      if (event.error === undefined) {
        logger.info("image pulled", {
          image: event.image,
          attempt: event.attempt,
          timeout: formatDuration(event.timeoutMs),
          duration: formatDuration(event.durationMs),
          size: event.sizeBytes === undefined ? undefined : formatBytes(event.sizeBytes),
          received: event.receivedBytes === undefined
            ? undefined
            : formatBytes(event.receivedBytes),
          rate: event.bytesPerSecond === undefined ? undefined : formatRate(event.bytesPerSecond),
          elapsed,
          attempt_id: event.attemptId,
        });
      } else {
        logger.warn("pull attempt failed", {
          image: event.image,
          attempt: event.attempt,
          timeout: formatDuration(event.timeoutMs),
          duration: formatDuration(event.durationMs),
          error: event.error,
          received: event.receivedBytes === undefined
            ? undefined
            : formatBytes(event.receivedBytes),
          elapsed,
          attempt_id: event.attemptId,
        });
      }
      break;
    case "progress": {
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
        elapsed,
      });
      break;
    }
    case "retry-scheduled":
      logger.info("retrying after a delay", {
        image: event.image,
        attempt: event.attempt + 1,
        delay: formatDuration(event.delayMs),
        elapsed,
      });
      break;
    case "image-done":
      if (event.result.status === "failed") {
        logger.error("image failed", {
          image: event.result.image,
          attempts: event.result.attempts,
          reason: event.result.failure,
          error: event.result.error,
          elapsed,
        });
      }
      break;
  }
}
