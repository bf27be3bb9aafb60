/**
 * `image-prefetcher keep-cycle`: the child process `keep` (`cmd/keep.ts`) starts for each cycle,
 * and once at its start to check its flags. It holds `keep`'s flag table (`fetch`'s and
 * `--refresh-interval`) and its `--help`, so that `keep`'s idle process never loads them:
 * `keep-cycle check <keep flags>` prints the help or the flag's error and exits 0 or 2;
 * `keep-cycle change|refresh <keep flags>` runs one cycle, a `fetch` run with the cycle's pull
 * policy and, with `--pin`, the release of this instance's pins of what is no longer listed.
 *
 * @module
 */
import { ExitCode, InterruptedError, InvalidInputError } from "../lib/core/exit_codes.ts";
import { dropRunPermission } from "../lib/core/run_permission.ts";
import { Logger } from "../lib/core/log.ts";
import type { CycleKind } from "../lib/keep/keeper.ts";
import { FETCH_FLAGS, type FetchInvocation, parseFetchArgs, runFetchInvocation } from "./fetch.ts";
import { type FlagSpec, helpRows, orExitOnInvalidInput, parseFlags } from "./_flags.ts";

/** The flags `keep` has besides `fetch`'s. */
export const KEEP_ONLY_FLAGS = {
  "refresh-interval": {
    type: "string",
    default: "6h",
    value: "duration",
    help: "Pull every listed tag again this often (±10% jitter per node), so a moved tag lands " +
      "and its pin moves with it.",
  },
} as const satisfies Record<string, FlagSpec>;

/** Every flag of `keep`: `fetch`'s and its own. */
export const KEEP_FLAGS = { ...FETCH_FLAGS, ...KEEP_ONLY_FLAGS };

/** The help text of `keep`. */
export function keepHelp(): string {
  return [
    "Usage: image-prefetcher keep --image-list-file path [flags] [image ...]",
    "",
    "Keeps the images of the list on this node: pulls what an edit of the list adds, within",
    "seconds (a ConfigMap volume is followed as the kubelet updates it); pulls every tag again",
    "each --refresh-interval; with --pin, pins what is listed and releases its own pins of what",
    "left the list or of a tag's old image. Each cycle runs in a child process that exits after",
    "it, so idling costs little more than sleep. The images are pulled as by fetch, whose flags",
    "keep takes; keep chooses the pull policy (an edit pulls what is missing, a refresh every",
    "tag), so --pull-policy is ignored.",
    "",
    "Flags:",
    ...helpRows(KEEP_FLAGS, 42),
    "",
    "Exit status:",
    "  0    stopped by SIGTERM or SIGINT (like sleep)",
    "  2    bad invocation: a flag (bad lines of the list are logged, and the rest is kept)",
  ].join("\n");
}

/** What `keep`'s command line asks for. */
export type KeepInvocation =
  | {
    kind: "run";
    /** The flags each cycle's child process gets: `fetch`'s. */
    fetchArgs: string[];
    /** The parsed `fetch` flags. */
    fetch: Extract<FetchInvocation, { kind: "run" }>;
    /** The image list file followed. */
    imageListFile: string;
    /** The mean time between refreshes. */
    refreshIntervalMs: number;
  }
  | { kind: "help" };

/** Parses `keep`'s arguments; throws {@linkcode InvalidInputError} naming the flag and the fix. */
export function parseKeepArgs(args: string[]): KeepInvocation {
  const flags = parseFlags("keep", KEEP_FLAGS, args, { positionals: true });
  if (flags.boolean("help")) return { kind: "help" };
  const refreshIntervalMs = flags.duration("refresh-interval");
  if (refreshIntervalMs < 1_000) {
    throw new InvalidInputError("--refresh-interval must be 1s or longer, like 6h.");
  }
  const fetchArgs = withoutFlags(args, Object.keys(KEEP_ONLY_FLAGS));
  const fetch = parseFetchArgs(fetchArgs);
  if (fetch.kind !== "run") return { kind: "help" };
  const imageListFile = fetch.config.imageListFile;
  if (imageListFile === undefined) {
    throw new InvalidInputError(
      "keep follows an image list file: add --image-list-file path (the ConfigMap's key).",
    );
  }
  return { kind: "run", fetchArgs, fetch, imageListFile, refreshIntervalMs };
}

/** `args` without the string flags `names` (`--name value` or `--name=value`). */
function withoutFlags(args: string[], names: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const name = args[i].match(/^--([^=]+)(=.*)?$/);
    if (name && names.includes(name[1])) {
      if (name[2] === undefined) i++;
      continue;
    }
    if (args[i] === "--") return [...out, ...args.slice(i)];
    out.push(args[i]);
  }
  return out;
}

/**
 * Runs `image-prefetcher keep-cycle check|change|refresh <keep flags>` and exits: with the
 * cycle's `fetch` exit status, or for `check` 0 (flags fine, or `--help` printed) or 2.
 */
export async function main(args: string[]): Promise<never> {
  const [mode, ...keepArgs] = args;
  const invocation = await orExitOnInvalidInput("keep", () => {
    if (mode !== "check" && mode !== "change" && mode !== "refresh") {
      throw new InvalidInputError(
        `keep-cycle needs check, change or refresh as its first argument, not "${mode}"; ` +
          "run image-prefetcher keep instead.",
      );
    }
    return parseKeepArgs(keepArgs);
  });
  if (invocation.kind === "help") {
    console.log(keepHelp());
    Deno.exit(ExitCode.Ok);
  }
  const { fetch } = invocation;
  if (mode === "check") {
    if (fetch.config.pullPolicy) {
      new Logger({ format: fetch.logFormat }).info(
        "keep chooses the pull policy per cycle (an edit pulls what is missing, a refresh every " +
          "tag); --pull-policy is ignored",
      );
    }
    Deno.exit(ExitCode.Ok);
  }
  if (!fetch.config.credentialProviders) dropRunPermission();
  const interrupt = new AbortController();
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(signal, () => interrupt.abort(new InterruptedError(signal)));
  }
  const { cycleConfig } = await import("../lib/keep/cycle_config.ts");
  const { afterKeepPulls } = await import("../lib/keep/after_pulls.ts");
  const config = cycleConfig(fetch.config, mode as CycleKind);
  const code = await runFetchInvocation({ ...fetch, config }, interrupt.signal, {
    afterPulls: (logger) => afterKeepPulls(config, { logger, signal: interrupt.signal }),
  });
  Deno.exit(code);
}
