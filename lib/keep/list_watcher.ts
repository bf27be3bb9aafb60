/**
 * Follows the image list file as the kubelet updates a ConfigMap volume, with only Deno's
 * built-ins (so `keep`'s idle process stays small).
 *
 * The kubelet's `AtomicWriter` (kubernetes `pkg/volume/util/atomic_writer.go`) never writes the
 * file in place. The volume holds a hidden directory `..<timestamp>.<random>` with the data,
 * a symlink `..data` to it, and one symlink per key, `<key> -> ..data/<key>`. An update writes a
 * new timestamped directory, points a new symlink `..data_tmp` at it, renames that over `..data`
 * (the atomic step), adds or removes the key symlinks, and deletes the old directory. So the
 * inode behind the path changes with every update while the path stays; a watch on the file
 * itself would follow the old inode. This looks at the path every `pollMs` (a `stat` through
 * the symlinks: inode, size, modification time), and when that changes reads the file again.
 * Polling rather than inotify: one `stat` a second costs nothing measurable, the kubelet itself
 * refreshes the volume only every minute or so, and it keeps the idle process smaller (no
 * watcher thread; see `bench/sleep_memory.ts`).
 *
 * A change is reported only when the content differs from the last one read, and once the same
 * content is read twice `settleMs` apart: a plain (non-atomic) writer may be caught half-way. A
 * file that cannot be read (between a key's removal and its return, say) is reported once as
 * `missing`, never as an empty list.
 *
 * @module
 */

/** What {@linkcode watchImageList} reports. */
export type ListChange =
  | { kind: "changed"; text: string }
  | { kind: "missing"; error: string };

/** Options for {@linkcode watchImageList}. */
export interface WatchImageListOptions {
  /** Stops watching. */
  signal: AbortSignal;
  /** Called once per change of the file's content (or when it becomes unreadable). */
  onChange: (change: ListChange) => void;
  /** How often the path is looked at, in milliseconds. @default {1000} */
  pollMs?: number;
  /** How long apart two reads must agree before a change counts, in ms. @default {250} */
  settleMs?: number;
}

/**
 * Watches `path` until `signal` aborts; the content at the start is the baseline (not reported).
 * Resolves when `signal` aborts.
 */
export async function watchImageList(path: string, options: WatchImageListOptions): Promise<void> {
  const { signal, onChange } = options;
  const pollMs = options.pollMs ?? 1_000;
  const settleMs = options.settleMs ?? 250;
  let last = await readState(path);
  let seen = await identity(path);
  while (!signal.aborted) {
    await sleep(pollMs, signal);
    const now = await identity(path);
    if (signal.aborted || now === seen) continue;
    const next = await settledState(path, settleMs, signal);
    seen = await identity(path);
    if (next === undefined || sameState(next, last)) continue;
    last = next;
    onChange(
      "text" in next
        ? { kind: "changed", text: next.text }
        : { kind: "missing", error: next.error },
    );
  }
}

type State = { text: string } | { error: string };

/** What changes when the file is replaced or written: inode, size and modification time. */
async function identity(path: string): Promise<string> {
  try {
    const info = await Deno.stat(path);
    return `${info.ino}:${info.size}:${info.mtime?.getTime()}`;
  } catch (error) {
    return `missing: ${error instanceof Error ? error.name : error}`;
  }
}

function sameState(a: State, b: State): boolean {
  return "text" in a ? "text" in b && a.text === b.text : "error" in b;
}

async function readState(path: string): Promise<State> {
  try {
    return { text: await Deno.readTextFile(path) };
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error) };
  }
}

/** Reads until two reads `settleMs` apart agree (at most five reads); `undefined` if aborted. */
async function settledState(
  path: string,
  settleMs: number,
  signal: AbortSignal,
): Promise<State | undefined> {
  let state = await readState(path);
  for (let read = 1; read < 5 && !signal.aborted; read++) {
    await sleep(settleMs, signal);
    const again = await readState(path);
    if (sameState(again, state)) return again;
    state = again;
  }
  return signal.aborted ? undefined : state;
}

/** Waits `ms`, or less when `signal` aborts (never rejects). */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
