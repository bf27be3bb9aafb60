/**
 * `keep`'s release of its pins: after a cycle's pulls and pins, every image record this owner
 * pinned that is no longer the image of a listed reference loses this owner's pin (an image that
 * left the list, or the old image of a tag that moved). Only this owner's: the labels of
 * `lib/runtime/pin_labels.ts` say who pinned what, so another tool's or another instance's pin
 * stays. Removing images is left to the kubelet's garbage collection.
 *
 * @module
 */
import { describeError } from "../pull/scheduler.ts";
import type { Logger } from "../core/log.ts";
import { systemClock } from "../core/clock.ts";
import type { PulledRun } from "../pull/run_fetch.ts";
import { parseImageList } from "../image/list.ts";

/** What releasing needs from the runtime (containerd's images service). */
export interface PinReleaser {
  /** The names of the records `owner` pinned. */
  pinnedBy(owner: string, options?: { signal?: AbortSignal }): Promise<string[]>;
  /** Releases `owner`'s pin of `name`; whether it had one. */
  release(name: string, owner: string, options?: { signal?: AbortSignal }): Promise<boolean>;
}

/** Options for {@linkcode releaseUnlistedPins}. */
export interface ReleasePinsOptions {
  /** The runtime's images service. */
  releaser: PinReleaser;
  /** Whose pins to release (`--pin-owner`). */
  owner: string;
  /** The image list file, read again before an empty list releases everything. */
  imageListFile?: string;
  /** Where each release is logged. */
  logger: Logger;
  /** Stops releasing. */
  signal?: AbortSignal;
  /** How long to wait before reading an empty list again, in ms. @default {1000} */
  confirmEmptyMs?: number;
}

/**
 * Releases this owner's pins of what `run` no longer lists. Does nothing when it cannot tell
 * what is listed: an image's status that cannot be read, a list of only bad lines, or an empty
 * list that is not empty when read again a moment later. Returns the released record names.
 */
export async function releaseUnlistedPins(
  run: PulledRun,
  options: ReleasePinsOptions,
): Promise<string[]> {
  const { logger, signal } = options;
  const listed = await listedImageIds(run, options);
  if (listed === undefined) return [];
  let owned: string[];
  try {
    owned = await options.releaser.pinnedBy(options.owner, { signal });
  } catch (error) {
    logger.warn("cannot list this instance's pins; none released", { error: describeError(error) });
    return [];
  }
  const released: string[] = [];
  for (const name of owned.filter((name) => !listed.has(name))) {
    if (signal?.aborted) break;
    try {
      if (!(await options.releaser.release(name, options.owner, { signal }))) continue;
      released.push(name);
      logger.info("pin released: the image is no longer listed", { image: name });
    } catch (error) {
      logger.warn("could not release a pin", { image: name, error: describeError(error) });
    }
  }
  return released;
}

/** The IDs of the listed images on the node, or `undefined` when that cannot be known. */
async function listedImageIds(
  run: PulledRun,
  options: ReleasePinsOptions,
): Promise<Set<string> | undefined> {
  if (run.results.length === 0) {
    if (run.invalidLines > 0) {
      options.logger.warn("no pin released: the image list has only invalid lines");
      return undefined;
    }
    if (!(await stillEmpty(options))) return undefined;
  }
  const ids = new Set<string>();
  for (const result of run.results) {
    try {
      const status = await run.runtime.imageStatus(result.image, { signal: options.signal });
      if (status) ids.add(status.id);
    } catch (error) {
      options.logger.warn("no pin released: cannot read a listed image's status", {
        image: result.image,
        error: describeError(error),
      });
      return undefined;
    }
  }
  return ids;
}

/** Whether the list, read again after a moment, still has no image (a writer caught half-way). */
async function stillEmpty(options: ReleasePinsOptions): Promise<boolean> {
  if (options.imageListFile === undefined) return true;
  try {
    await systemClock.sleep(options.confirmEmptyMs ?? 1_000, options.signal);
  } catch {
    return false; // Stopped: release nothing.
  }
  try {
    const text = await Deno.readTextFile(options.imageListFile);
    const empty = parseImageList(text, options.imageListFile).entries.length === 0;
    if (!empty) options.logger.warn("no pin released: the image list was read empty, then not");
    return empty;
  } catch {
    options.logger.warn("no pin released: the image list cannot be read");
    return false;
  }
}
