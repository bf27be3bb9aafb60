/**
 * Runs the real `image-prefetcher` as a subprocess, through `main.ts` under `deno run` with the
 * very permission flags that `deno task compile` bakes into the binary (read from `deno.json`),
 * so tests exercise what ships.
 *
 * @module
 */
import denoConfig from "../deno.json" with { type: "json" };
import type { FetchSummary } from "../lib/pull/run_summary.ts";

const ROOT = new URL("../", import.meta.url);
const MAIN = new URL("main.ts", ROOT).pathname;

/** The `--allow-*` flags of the `compile` task, the ones the shipped binary runs with. */
export const PERMISSION_FLAGS: readonly string[] = denoConfig.tasks.compile
  .split(/\s+/)
  .filter((word) => word.startsWith("--allow-") || word.startsWith("--deny-"));

/** A finished run of the program. */
export interface ProgramRun {
  /** The exit status. */
  code: number;
  /** Everything written to standard output. */
  stdout: string;
  /** Everything written to standard error. */
  stderr: string;
  /** Each standard-error line that is a JSON object (the logs under `--log-format json`). */
  events: Array<Record<string, unknown> & { msg: string; level: string }>;
  /** The summary, when the run printed one as JSON (`--log-format json`). */
  summary?: RunSummary;
}

/** The JSON summary `fetch --log-format json` prints on standard output. */
export type RunSummary = FetchSummary;

/** Options for {@linkcode spawnProgram}. */
export interface SpawnProgramOptions {
  /** Extra environment variables. */
  env?: Record<string, string>;
}

/** A running program; `finished` resolves when it exits. */
export interface RunningProgram {
  /** The child process. */
  process: Deno.ChildProcess;
  /** Resolves with the whole run once the program exits. */
  finished: Promise<ProgramRun>;
}

/** Starts `image-prefetcher <args>` and collects its output. */
export function spawnProgram(args: string[], options: SpawnProgramOptions = {}): RunningProgram {
  const process = new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", ...PERMISSION_FLAGS, MAIN, ...args],
    cwd: ROOT.pathname,
    env: { NO_COLOR: "1", ...options.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const finished = process.output().then((output) => {
    const stdout = new TextDecoder().decode(output.stdout);
    const stderr = new TextDecoder().decode(output.stderr);
    return {
      code: output.code,
      stdout,
      stderr,
      events: parseJsonLines(stderr) as ProgramRun["events"],
      summary: (parseJsonLines(stdout).find((o) => "summary" in o) as { summary?: RunSummary })
        ?.summary,
    };
  });
  return { process, finished };
}

/** Runs `image-prefetcher <args>` to the end. */
export function runProgram(args: string[], options: SpawnProgramOptions = {}): Promise<ProgramRun> {
  return spawnProgram(args, options).finished;
}

function parseJsonLines(text: string): Record<string, unknown>[] {
  return text.split("\n").flatMap((line) => {
    if (!line.startsWith("{")) return [];
    try {
      return [JSON.parse(line)];
    } catch {
      return [];
    }
  });
}

/**
 * The arguments of `image-prefetcher fetch` against the CRI socket `socket`, with JSON logs (so
 * that {@linkcode ProgramRun} has `events` and `summary`), then `args`.
 */
export function jsonFetchArgs(socket: string, ...args: string[]): string[] {
  return ["fetch", "--cri-socket", socket, "--log-format", "json", ...args];
}
