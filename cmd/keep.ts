/**
 * `image-prefetcher keep`: the DaemonSet's main container when the nodes are kept warm (see
 * `keep --help`, printed by `cmd/keep_cycle.ts`). This is its idle process, which must cost
 * little more than `sleep`: it loads no flag table and no pulling code. Its flags are checked,
 * and its help printed, by a first child `keep-cycle check`; each cycle (pull, pin, release) runs
 * in a child `keep-cycle change|refresh` that exits when done. This process only follows the
 * list file and the refresh timer, and forwards SIGTERM.
 *
 * @module
 */
import { ExitCode, InterruptedError } from "../lib/core/exit_codes.ts";
import { formatDuration, parseDuration } from "../lib/core/duration.ts";
import { type LogFormat, Logger } from "../lib/core/log.ts";
import { keepImages } from "../lib/keep/keeper.ts";
import { watchImageList } from "../lib/keep/list_watcher.ts";
import { runCycleProcess } from "../lib/keep/cycle_process.ts";

/** What the idle process reads from `keep`'s flags, once `keep-cycle check` has accepted them. */
export interface KeepSettings {
  /** `--image-list-file`. */
  imageListFile: string;
  /** `--refresh-interval`, in milliseconds. */
  refreshIntervalMs: number;
  /** `--log-format`. */
  logFormat: LogFormat;
  /** `--debug`. */
  debug: boolean;
}

const STRING_FLAGS = ["image-list-file", "refresh-interval", "log-format"];

/**
 * The few flags the idle process needs, from arguments `keep-cycle check` has accepted (so
 * every value is valid; `--image-list-file` is there). Later occurrences win, as in the parser.
 */
export function scanKeepArgs(args: string[]): KeepSettings {
  const values = new Map<string, string>();
  let debug = false;
  for (let i = 0; i < args.length && args[i] !== "--"; i++) {
    const flag = args[i].match(/^--([^=]+)(?:=(.*))?$/s);
    if (!flag) continue;
    if (flag[1] === "debug") debug = true;
    if (STRING_FLAGS.includes(flag[1])) values.set(flag[1], flag[2] ?? args[++i]);
  }
  return {
    imageListFile: values.get("image-list-file")!,
    refreshIntervalMs: parseDuration(values.get("refresh-interval") ?? "6h"),
    logFormat: values.get("log-format") === "json" ? "json" : "text",
    debug,
  };
}

/** Runs `keep` until SIGTERM or SIGINT, then exits 0. */
export async function main(args: string[]): Promise<never> {
  const stop = new AbortController();
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(signal, () => stop.abort(new InterruptedError(signal)));
  }
  const checked = await runCycleProcess("check", args, stop.signal);
  if (stop.signal.aborted) Deno.exit(ExitCode.Ok);
  if (checked !== ExitCode.Ok || args.includes("--help") || args.includes("-h")) {
    Deno.exit(checked);
  }
  const settings = scanKeepArgs(args);
  const logger = new Logger({ format: settings.logFormat, debug: settings.debug });
  logger.info("keeping images", {
    image_list_file: settings.imageListFile,
    refresh_interval: formatDuration(settings.refreshIntervalMs),
  });
  await keepImages({
    runCycle: (kind, signal) => runCycleProcess(kind, args, signal),
    watchList: (changed, signal) =>
      watchImageList(settings.imageListFile, {
        signal,
        onChange: (change) => {
          if (change.kind === "changed") return changed();
          logger.warn("the image list cannot be read; keeping what is there until it can", {
            file: settings.imageListFile,
            error: change.error,
          });
        },
        onWatchError: (error) =>
          logger.warn("cannot watch the image list's directory; looking at the file every second", {
            file: settings.imageListFile,
            error,
            fix: "mount the list's directory (deploy.ts does), or raise the node's " +
              "fs.inotify.max_user_instances / max_user_watches if it is mounted",
          }),
      }),
    refreshIntervalMs: settings.refreshIntervalMs,
    signal: stop.signal,
    logger,
  });
  logger.info("stopped", { reason: (stop.signal.reason as Error)?.message });
  Deno.exit(ExitCode.Ok);
}
