/**
 * Asks the runtime about an image it has just pulled, for the size and reference the summary and
 * the metrics report. The pull has succeeded, so a failing question is the runtime's socket
 * going away for a moment (a graceful stop, a restart): it is asked again until it answers,
 * within a bound, instead of reporting a pulled image as having no size.
 *
 * @module
 */
import type { CriImage } from "../runtime/cri_client.ts";
import { type Clock, systemClock } from "../core/clock.ts";

/** The part of a runtime client {@linkcode lookUpStoredImage} uses. */
export interface ImageStatusSource {
  /** Returns the image when the node has it. */
  imageStatus(image: string, options?: { signal?: AbortSignal }): Promise<CriImage | undefined>;
}

/** Options for {@linkcode lookUpStoredImage}. */
export interface LookUpStoredImageOptions {
  /** Stops asking (the run is over or interrupted); what is known then is returned. */
  signal?: AbortSignal;
  /**
   * Time and waits.
   * @default {systemClock}
   */
  clock?: Clock;
  /**
   * How long to keep asking a runtime whose socket fails, in milliseconds.
   * @default {10_000}
   */
  patienceMs?: number;
  /**
   * The first wait between questions, doubled after each failure up to 2 s.
   * @default {100}
   */
  initialDelayMs?: number;
}

/**
 * Returns what the runtime says about `image`, asking again while its socket fails, for up to
 * `patienceMs`; `undefined` when it never answered or does not have the image.
 *
 * @example
 * ```ts
 * import { CriClient } from "../runtime/cri_client.ts";
 * import { lookUpStoredImage } from "./stored_image.ts";
 *
 * // The size containerd reports for an image it has just pulled.
 * async function sizeOf(imageRef: string): Promise<number | undefined> {
 *   using cri = new CriClient("/run/containerd/containerd.sock");
 *   return (await lookUpStoredImage(cri, imageRef))?.sizeBytes;
 * }
 * ```
 */
export async function lookUpStoredImage(
  runtime: ImageStatusSource,
  image: string,
  options: LookUpStoredImageOptions = {},
): Promise<CriImage | undefined> {
  const clock = options.clock ?? systemClock;
  const giveUpAt = clock.now() + (options.patienceMs ?? 10_000);
  let delayMs = options.initialDelayMs ?? 100;
  while (true) {
    try {
      return await runtime.imageStatus(image, { signal: options.signal });
    } catch {
      if (options.signal?.aborted || clock.now() + delayMs > giveUpAt) return undefined;
    }
    try {
      await clock.sleep(delayMs, options.signal);
    } catch {
      return undefined;
    }
    delayMs = Math.min(2_000, delayMs * 2);
  }
}
