/**
 * What a `keep` cycle does after its pulls and pins: with `--pin`, releases this instance's pins
 * of what is no longer listed.
 *
 * @module
 */
import type { Logger } from "../core/log.ts";
import type { FetchConfig, PulledRun } from "../pull/run_fetch.ts";
import { ContainerdImages } from "../runtime/containerd_images.ts";
import { releaseUnlistedPins } from "./release_pins.ts";

/** The `afterPulls` hook of a cycle run with `config`. */
export function afterKeepPulls(
  config: FetchConfig,
  context: { logger: Logger; signal: AbortSignal },
): (run: PulledRun) => Promise<void> {
  return async (run) => {
    if (!config.pin) return;
    using releaser = new ContainerdImages(config.criSocket);
    await releaseUnlistedPins(run, {
      releaser,
      owner: config.pinOwner ?? "image-prefetcher",
      imageListFile: config.imageListFile,
      logger: context.logger,
      signal: AbortSignal.any([context.signal, run.signal]),
    });
  };
}
