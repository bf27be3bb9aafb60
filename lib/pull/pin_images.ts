/**
 * `fetch --pin`: after the pulls, pin every image that is on the node, then check through CRI
 * that the runtime reports it `pinned` (what the kubelet's image garbage collection looks at).
 *
 * @module
 */
import { type Clock, systemClock } from "../core/clock.ts";
import type { Logger } from "../core/log.ts";
import { type ImageLabeler, ImagesServiceError } from "../runtime/containerd_images.ts";
import { describeError, type ImageResult } from "./scheduler.ts";

/** What pinning needs from the runtime's CRI side. */
export interface PinStatusReader {
  /** CRI `ImageStatus`: the image's ID and `pinned` flag, `undefined` when it is not on the node. */
  imageStatus(image: string, options?: { signal?: AbortSignal }): Promise<
    { id: string; pinned: boolean } | undefined
  >;
}

/** Options for {@linkcode pinImages}. */
export interface PinImagesOptions {
  /** Sets the pin label (containerd's images service). */
  labeler: ImageLabeler;
  /** Reads CRI's `pinned` flag back. */
  cri: PinStatusReader;
  /** Where the outcome is logged. */
  logger: Logger;
  /** The runtime, as `fetch started` names it, for the log line of a runtime that cannot pin. */
  runtime: string;
  /** How long to wait for the runtime to report the pins, in milliseconds. @default {3000} */
  confirmTimeoutMs?: number;
  /** Time and waits. @default {systemClock} */
  clock?: Clock;
  /** Who pins, recorded on each image so that only this owner releases its pin (`--pin-owner`). */
  owner?: string;
  /** Cancels pinning. */
  signal?: AbortSignal;
}

/** What became of the pins. */
export interface PinOutcome {
  /** Images the runtime reports as pinned. */
  pinned: string[];
  /** Images labelled, but not reported pinned in time. */
  unconfirmed: string[];
  /** Images that could not be labelled, with why. */
  failed: { image: string; error: string }[];
  /** Set when the runtime has no images service: nothing was labelled. */
  unsupported?: string;
}

const UNIMPLEMENTED = 12;

/**
 * Pins every image of `results` that is on the node (pulled or present) by labelling its image ID
 * record (`sha256:<config digest>`, found with CRI `ImageStatus`). Not the tag's record: every
 * pull of a tag rewrites that record with the puller's labels only (containerd 1.7.24, measured),
 * so a kubelet pull with `imagePullPolicy: Always` would drop the pin; nothing pulls by ID. The
 * pin therefore stays with the image when its tag moves on. Logs one line per image, or a single
 * line when the runtime cannot pin at all. Never throws: an aborted `signal` ends it early
 * with what was done.
 */
export async function pinImages(
  results: ImageResult[],
  options: PinImagesOptions,
): Promise<PinOutcome> {
  const { logger } = options;
  const outcome: PinOutcome = { pinned: [], unconfirmed: [], failed: [] };
  const onNode = results.filter((r) => r.status === "pulled" || r.status === "present");
  const labelled: string[] = [];
  for (const result of onNode) {
    try {
      await labelImage(result, options);
      labelled.push(result.image);
    } catch (error) {
      if (error instanceof ImagesServiceError && error.code === UNIMPLEMENTED) {
        outcome.unsupported = `the socket does not serve containerd's images service`;
        logger.warn("cannot pin images on this runtime; the kubelet may garbage-collect them", {
          runtime: options.runtime,
          reason: outcome.unsupported,
        });
        return outcome;
      }
      if (options.signal?.aborted) return outcome;
      outcome.failed.push({ image: result.image, error: describeError(error) });
      logger.warn("could not pin image", { image: result.image, error: describeError(error) });
    }
  }
  const reported = await confirmPins(labelled, options);
  outcome.pinned = labelled.filter((image) => reported.has(image));
  outcome.unconfirmed = labelled.filter((image) => !reported.has(image));
  if (outcome.pinned.length === 0 && outcome.unconfirmed.length > 0) {
    logger.warn(
      "this runtime does not report pinned images (containerd does from 1.7); images are " +
        "labelled io.cri-containerd.pinned=pinned but the kubelet may garbage-collect them",
      { runtime: options.runtime, images: outcome.unconfirmed.length },
    );
    return outcome;
  }
  for (const image of outcome.pinned) logger.info("image pinned", { image });
  for (const image of outcome.unconfirmed) {
    logger.warn("image labelled but not reported pinned", { image });
  }
  return outcome;
}

async function labelImage(result: ImageResult, options: PinImagesOptions): Promise<void> {
  const status = await options.cri.imageStatus(result.image, { signal: options.signal });
  if (!status) throw new Error(`${result.image} is no longer on the node`);
  await options.labeler.pin(status.id, { signal: options.signal, owner: options.owner });
}

/** Polls CRI until every image reads `pinned`, or the confirmation time is up. */
async function confirmPins(images: string[], options: PinImagesOptions): Promise<Set<string>> {
  const clock = options.clock ?? systemClock;
  const deadline = clock.now() + (options.confirmTimeoutMs ?? 3000);
  const reported = new Set<string>();
  while (true) {
    for (const image of images.filter((i) => !reported.has(i))) {
      const status = await options.cri.imageStatus(image, { signal: options.signal })
        .catch(() => undefined);
      if (status?.pinned) reported.add(image);
    }
    if (reported.size === images.length || clock.now() >= deadline) return reported;
    const wait = Math.min(200, Math.max(0, deadline - clock.now()));
    if (!(await clock.sleep(wait, options.signal).then(() => true, () => false))) return reported;
  }
}
