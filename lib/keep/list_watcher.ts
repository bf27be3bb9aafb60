/**
 * Follows the image list file as the kubelet updates a ConfigMap volume, with only Deno's
 * built-ins (so `keep`'s idle process stays small).
 *
 * The kubelet's `AtomicWriter` (kubernetes `pkg/volume/util/atomic_writer.go`) never writes the
 * file in place. The volume holds a hidden directory `..<timestamp>.<random>` with the data,
 * a symlink `..data` to it, and one symlink per key, `<key> -> ..data/<key>`. An update writes a
 * new timestamped directory, points a new symlink `..data_tmp` at it, renames that over `..data`
 * (the atomic step), adds or removes the key symlinks, and deletes the old directory. So the
 * file's own inode never changes: this watches the directory that holds the file, and on any
 * event there waits for the writes to settle and reads the file again through its symlinks. A
 * change is reported only when the content differs from the last one read, and only once the
 * same content is read twice in a row: a plain (non-atomic) writer may be caught half-way.
 *
 * A file that cannot be read (between a key's removal and its return, say) is reported as
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
  /** How long the directory must be quiet before the file is read, in ms. @default {250} */
  settleMs?: number;
  /**
   * Also read the file this often, in case the platform drops a notification, in ms.
   * @default {60000}
   */
  pollMs?: number;
}

/**
 * Watches `path` until `signal` aborts; the content at the start is the baseline (not reported).
 * Resolves when `signal` aborts.
 */
export async function watchImageList(path: string, options: WatchImageListOptions): Promise<void> {
  const { signal, onChange } = options;
  const settleMs = options.settleMs ?? 250;
  let last = await readState(path);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let reading = Promise.resolve();
  const check = () => {
    reading = reading.then(async () => {
      const next = await settledState(path, settleMs, signal);
      if (next === undefined || signal.aborted || sameState(next, last)) return;
      last = next;
      onChange(
        "text" in next
          ? { kind: "changed", text: next.text }
          : { kind: "missing", error: next.error },
      );
    });
  };
  const schedule = () => {
    clearTimeout(timer);
    timer = setTimeout(check, settleMs);
  };
  const poll = setInterval(check, options.pollMs ?? 60_000);
  const watcher = Deno.watchFs(directoryOf(path), { recursive: false });
  signal.addEventListener("abort", () => watcher.close(), { once: true });
  try {
    for await (const _event of watcher) schedule();
  } catch (error) {
    if (!signal.aborted) throw error;
  } finally {
    clearTimeout(timer);
    clearInterval(poll);
    if (!signal.aborted) watcher.close();
  }
  await reading;
}

type State = { text: string } | { error: string };

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
    await new Promise((resolve) => setTimeout(resolve, settleMs));
    const again = await readState(path);
    if (sameState(again, state)) return again;
    state = again;
  }
  return signal.aborted ? undefined : state;
}

function directoryOf(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash < 0 ? "." : slash === 0 ? "/" : path.slice(0, slash);
}
