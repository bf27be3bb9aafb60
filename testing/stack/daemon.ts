/**
 * A long-running child process (registry, containerd) whose stdout and stderr go to a log file.
 *
 * @module
 */

/** Options for {@linkcode spawnDaemon}. */
export interface SpawnDaemonOptions {
  /** Working directory of the process. @default {the current directory} */
  cwd?: string;
  /** Extra environment variables. @default {{}} */
  env?: Record<string, string>;
}

/** A running background process; see {@linkcode spawnDaemon}. */
export interface Daemon {
  /** Process id. */
  readonly pid: number;
  /** The file its stdout and stderr are appended to. */
  readonly logPath: string;
  /** Resolves with the exit status once the process has ended. */
  readonly status: Promise<Deno.CommandStatus>;
  /** Whether the process has ended. */
  readonly exited: boolean;
  /**
   * Sends SIGTERM, then SIGKILL after `graceMs` if it is still running, and waits for the end.
   *
   * @default graceMs {5000}
   */
  stop(graceMs?: number): Promise<Deno.CommandStatus>;
}

/**
 * Starts `binary` with `args`, appending its output to `logPath`.
 *
 * The output is redirected by a shell that then `exec`s the program, so the process we signal is
 * the daemon itself and no pipe has to be pumped by this process (nothing keeps Deno busy).
 */
export function spawnDaemon(
  binary: string,
  args: string[],
  logPath: string,
  options: SpawnDaemonOptions = {},
): Daemon {
  const child = new Deno.Command("/bin/sh", {
    args: ["-c", 'exec "$@" >>"$IPF_LOG" 2>&1', "sh", binary, ...args],
    cwd: options.cwd,
    env: { ...options.env, IPF_LOG: logPath },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  return {
    pid: child.pid,
    logPath,
    status,
    get exited() {
      return exited;
    },
    async stop(graceMs = 5000) {
      if (exited) return status;
      signal(child, "SIGTERM");
      let timer: ReturnType<typeof setTimeout> | undefined;
      const killed = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          signal(child, "SIGKILL");
          resolve();
        }, graceMs);
      });
      await Promise.race([status, killed]);
      clearTimeout(timer);
      return await status;
    },
  };
}

function signal(child: Deno.ChildProcess, sig: Deno.Signal): void {
  try {
    child.kill(sig);
  } catch {
    // already gone
  }
}

/** Returns the last `lines` lines of the file at `path`, or a note if it cannot be read. */
export async function readLogTail(path: string, lines = 30): Promise<string> {
  try {
    const text = await Deno.readTextFile(path);
    return text.trimEnd().split("\n").slice(-lines).join("\n");
  } catch (error) {
    return `(cannot read ${path}: ${(error as Error).message})`;
  }
}
