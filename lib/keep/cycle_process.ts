/**
 * Runs one `keep` cycle in a child process (`image-prefetcher keep-cycle <kind> <keep flags>`)
 * that exits when the cycle is done, so the idle parent never loads the pulling code (nor the
 * flag table: `check` is the child that checks the flags). The child writes its logs and summary
 * to this process's standard error and output.
 *
 * @module
 */
import type { CycleKind } from "./keeper.ts";
import { selfCommand } from "./self_command.ts";
import { type Alarm, setAlarm } from "./alarm.ts";

/**
 * How long a stopped child gets to exit after SIGTERM before it is killed, in ms: a cycle gives
 * what follows its pulls (deleting its containerd lease, releasing pins) 1.5 s after SIGTERM, and
 * a kill before that would leave the lease until it expires. A child that is not stuck exits well
 * before.
 */
export const CHILD_STOP_GRACE_MS = 2_500;

/**
 * Runs the cycle and resolves with the child's exit status. When `signal` aborts, the child gets
 * SIGTERM (it stops pulling, pins nothing more and exits), then SIGKILL after
 * {@linkcode CHILD_STOP_GRACE_MS}.
 */
export async function runCycleProcess(
  kind: CycleKind | "check",
  keepArgs: string[],
  signal: AbortSignal,
): Promise<number> {
  const { command, args } = selfCommand(["keep-cycle", kind, ...keepArgs]);
  const child = new Deno.Command(command, {
    args,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  let kill: Alarm | undefined;
  const stop = () => {
    signalChild(child, "SIGTERM");
    kill = setAlarm(CHILD_STOP_GRACE_MS, () => signalChild(child, "SIGKILL"));
  };
  if (signal.aborted) stop();
  else signal.addEventListener("abort", stop, { once: true });
  try {
    return (await child.status).code;
  } finally {
    signal.removeEventListener("abort", stop);
    kill?.cancel();
  }
}

function signalChild(child: Deno.ChildProcess, name: Deno.Signal): void {
  try {
    child.kill(name);
  } catch {
    // Already gone.
  }
}
