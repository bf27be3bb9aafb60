/**
 * The `fetch` flags that `deploy` passes through to the init container, with `fetch`'s own
 * defaults (a test compares them with `FETCH_FLAGS` of `cmd/fetch.ts`, which this module cannot
 * import: that would pull the gRPC packages into `deploy.ts`).
 *
 * @module
 */
import { DurationError, parseDuration } from "../core/duration.ts";
import { DeployInputError } from "./deploy_error.ts";

/** `fetch`'s duration flags that `deploy` passes through, with `fetch`'s defaults. */
export const FETCH_DURATION_DEFAULTS = {
  "image-list-timeout": "1m",
  "cri-connect-timeout": "1m",
  "initial-pull-attempt-timeout": "30s",
  "max-pull-attempt-timeout": "5m",
  "overall-timeout": "20m",
  "initial-pull-attempt-delay": "1s",
  "max-pull-attempt-delay": "10m",
  "stall-timeout": "10s",
  "progress-interval": "10s",
} as const;

/** Every `fetch` flag that `deploy` passes through, with `fetch`'s default. */
export const FETCH_TUNING_DEFAULTS = {
  "max-parallel": "0",
  progress: "auto",
  ...FETCH_DURATION_DEFAULTS,
} as const;

/** The name of a `fetch` flag that `deploy` passes through. */
export type FetchTuningFlag = keyof typeof FETCH_TUNING_DEFAULTS;

/**
 * `fetch` flags to set in the init container, by flag name (`"overall-timeout": "30m"`); a flag
 * left out gets `fetch`'s default.
 */
export type FetchTuning = Partial<Record<FetchTuningFlag, string>>;

/**
 * Checks `tuning` the way `fetch` will, so a bad value fails at `deploy` time rather than in an
 * init container on every node. Throws {@linkcode DeployInputError}.
 */
export function validateFetchTuning(tuning: FetchTuning): void {
  for (const flag of Object.keys(tuning)) {
    if (!Object.hasOwn(FETCH_TUNING_DEFAULTS, flag)) {
      throw new DeployInputError(
        `--${flag} is not a fetch flag that deploy passes through; use one of ${
          Object.keys(FETCH_TUNING_DEFAULTS).map((f) => `--${f}`).join(", ")
        }.`,
      );
    }
  }
  const maxParallel = tuning["max-parallel"];
  if (maxParallel !== undefined && !/^\d+$/.test(maxParallel)) {
    throw new DeployInputError(
      `--max-parallel must be a whole number (0 for no bound), not "${maxParallel}".`,
    );
  }
  const progress = tuning.progress;
  if (progress !== undefined && progress !== "auto" && progress !== "off") {
    throw new DeployInputError(`--progress must be auto or off, not "${progress}".`);
  }
  const ms = (flag: keyof typeof FETCH_DURATION_DEFAULTS): number => {
    const text = tuning[flag] ?? FETCH_DURATION_DEFAULTS[flag];
    try {
      return parseDuration(text);
    } catch (error) {
      if (!(error instanceof DurationError)) throw error;
      throw new DeployInputError(`--${flag}: ${error.message}`);
    }
  };
  for (
    const flag of Object.keys(FETCH_DURATION_DEFAULTS) as (keyof typeof FETCH_DURATION_DEFAULTS)[]
  ) {
    ms(flag);
  }
  for (
    const [initial, max] of [
      ["initial-pull-attempt-timeout", "max-pull-attempt-timeout"],
      ["initial-pull-attempt-delay", "max-pull-attempt-delay"],
    ] as const
  ) {
    if (ms(initial) > ms(max)) {
      throw new DeployInputError(
        `--${initial} (${tuning[initial] ?? FETCH_DURATION_DEFAULTS[initial]}) is longer than ` +
          `--${max} (${tuning[max] ?? FETCH_DURATION_DEFAULTS[max]}); raise --${max} or lower ` +
          `--${initial}.`,
      );
    }
  }
  if (ms("initial-pull-attempt-timeout") <= 0) {
    throw new DeployInputError("--initial-pull-attempt-timeout must be longer than 0s, like 30s.");
  }
}

/** The `fetch` arguments for `tuning`, in the order of {@linkcode FETCH_TUNING_DEFAULTS}. */
export function fetchTuningArgs(tuning: FetchTuning): string[] {
  return (Object.keys(FETCH_TUNING_DEFAULTS) as FetchTuningFlag[]).flatMap((flag) => {
    const value = tuning[flag];
    return value === undefined ? [] : [`--${flag}`, value];
  });
}
