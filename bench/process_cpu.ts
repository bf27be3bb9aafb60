/**
 * CPU seconds spent by single processes, read from `/proc/<pid>/stat`: a daemon found by its
 * command line, the benchmark itself (the fault proxy runs in it), and the benchmark's children
 * that have exited (`fetch`, `ctr`), so a table can say where a run's CPU time went.
 *
 * @module
 */

/** Clock ticks per second of `/proc/<pid>/stat` (`getconf CLK_TCK`; 100 on Linux/x86_64). */
const TICKS_PER_SECOND = 100;

/** CPU seconds of a process and of its exited, waited-for children, from `/proc/<pid>/stat`. */
export interface CpuTimes {
  /** User + system time of the process itself. */
  self: number;
  /** User + system time of its children that exited and were waited for. */
  children: number;
}

/** Reads the CPU times of `pid` (`"self"` for this process); zeros if it is gone. */
export async function cpuTimes(pid: number | "self"): Promise<CpuTimes> {
  let stat: string;
  try {
    stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  } catch {
    return { self: 0, children: 0 };
  }
  // The command name (field 2) may hold spaces; count fields after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number);
  // fields[0] is field 3 (state): utime, stime, cutime, cstime are fields 14–17.
  const [utime, stime, cutime, cstime] = fields.slice(11, 15);
  return {
    self: (utime + stime) / TICKS_PER_SECOND,
    children: (cutime + cstime) / TICKS_PER_SECOND,
  };
}

/** The id of the first process whose command line contains `fragment`, if any. */
export async function findPid(fragment: string): Promise<number | undefined> {
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name) || entry.name === String(Deno.pid)) continue;
    try {
      const commandLine = (await Deno.readTextFile(`/proc/${entry.name}/cmdline`))
        .replaceAll("\0", " ");
      if (commandLine.includes(fragment)) return Number(entry.name);
    } catch {
      // exited meanwhile
    }
  }
  return undefined;
}
