/**
 * What one `keep` cycle pulls: after an edit, what is missing (so an edit costs no registry
 * traffic for the images already there); at a refresh, every tag again, so a tag moved in the
 * registry lands (a digest never moves, so it is pulled only when absent).
 *
 * @module
 */
import type { FetchConfig } from "../pull/run_fetch.ts";
import type { CycleKind } from "./keeper.ts";

/** `config` for a cycle of `kind`; `keep` chooses the pull policy, whatever `--pull-policy` says. */
export function cycleConfig(config: FetchConfig, kind: CycleKind): FetchConfig {
  if (kind === "refresh") return { ...config, pullPolicy: undefined, refreshTags: true };
  return { ...config, pullPolicy: "IfNotPresent", refreshTags: false };
}
