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
 * alone would follow the old inode.
 *
 * So this watches (inotify, through `Deno.watchFs`) the directory holding the path, which sees
 * the swap and any file written or replaced there, and the file the path leads to, which sees it
 * written in place (a file bind-mounted from elsewhere, say); both are aimed again after each
 * change. An event only makes it look at the path (a `stat` through the symlinks: inode, size,
 * modification time), and read the file when that changed. Between events no code runs at all:
 * a timer that polled every second made the idle process grow by about 2 MiB in its first
 * minutes (`bench/sleep_memory.ts`). A slow poll (`backstopMs`) covers what no event reports;
 * when the directory cannot be watched (it does not exist yet, or the node's inotify limits are
 * reached) the path is polled every `pollMs` instead, and `onWatchError` says why.
 *
 * A change is reported only when the content differs from the last one read, and once the same
 * content is read twice `settleMs` apart: a plain (non-atomic) writer may be caught half-way. A
 * file that cannot be read (between a key's removal and its return, say) is reported once as
 * `missing`, never as an empty list.
 *
 * @module
 */
import { type Alarm, setAlarm, sleepFor } from "./alarm.ts";

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
  /**
   * Called when the file's directory cannot be watched, with why; the path is then polled every
   * `pollMs` until it can be. Called again only after watching worked in between.
   */
  onWatchError?: (error: string) => void;
  /** How often the path is looked at when it cannot be watched, in ms. @default {1000} */
  pollMs?: number;
  /** How often the path is looked at while it is watched, in ms. @default {60000} */
  backstopMs?: number;
  /** How long apart two reads must agree before a change counts, in ms. @default {250} */
  settleMs?: number;
}

/**
 * Watches `path` until `signal` aborts; the content at the start is the baseline (not reported).
 * Resolves when `signal` aborts.
 */
export async function watchImageList(path: string, options: WatchImageListOptions): Promise<void> {
  const { signal, onChange } = options;
  const settleMs = options.settleMs ?? 250;
  const events = new EventWatch(path, options.onWatchError);
  let last = readState(path);
  let seen = identity(path);
  events.aim();
  try {
    while (!signal.aborted) {
      await events.next(
        events.watching ? options.backstopMs ?? 60_000 : options.pollMs ?? 1_000,
        signal,
      );
      const now = identity(path);
      if (signal.aborted || now === seen) continue;
      const next = await settledState(path, settleMs, signal);
      seen = identity(path);
      events.aim();
      if (next === undefined || sameState(next, last)) continue;
      last = next;
      onChange(
        "text" in next
          ? { kind: "changed", text: next.text }
          : { kind: "missing", error: next.error },
      );
    }
  } finally {
    events.close();
  }
}

/** An inotify watch on a path's directory and the file it leads to, waking one waiter. */
class EventWatch {
  readonly #path: string;
  readonly #directory: string;
  readonly #onError?: (error: string) => void;
  #watcher?: Deno.FsWatcher;
  #wake?: () => void;
  #tick?: { ms: number; alarm: Alarm };
  #pending = false;
  #failed = false;

  constructor(path: string, onError?: (error: string) => void) {
    this.#path = path;
    const slash = path.lastIndexOf("/");
    this.#directory = slash < 0 ? "." : slash === 0 ? "/" : path.slice(0, slash);
    this.#onError = onError;
  }

  /** Whether events arrive (otherwise the caller polls). */
  get watching(): boolean {
    return this.#watcher !== undefined;
  }

  /** (Re)starts the watch on the directory and on the file the path now leads to. */
  aim(): void {
    this.#closeWatcher();
    const paths = [this.#directory];
    try {
      Deno.statSync(this.#path);
      paths.push(this.#path);
    } catch {
      // No file yet: the directory's events say when it comes.
    }
    let watcher: Deno.FsWatcher;
    try {
      watcher = Deno.watchFs(paths, { recursive: false });
    } catch (error) {
      if (!this.#failed) this.#onError?.(error instanceof Error ? error.message : String(error));
      this.#failed = true;
      return;
    }
    this.#failed = false;
    this.#watcher = watcher;
    this.#forward(watcher);
  }

  /**
   * Resolves after the next event (or one that came since the last call), the next tick of a
   * timer that ticks every `ms`, or an abort.
   */
  next(ms: number, signal: AbortSignal): Promise<void> {
    if (this.#tick && this.#tick.ms > ms) this.#stopTicking();
    this.#tick ??= {
      ms,
      alarm: setAlarm(ms, () => {
        this.#tick = undefined;
        this.#notify();
      }),
    };
    if (this.#pending || signal.aborted) {
      this.#pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        signal.removeEventListener("abort", done);
        this.#wake = undefined;
        this.#pending = false;
        resolve();
      };
      signal.addEventListener("abort", done, { once: true });
      this.#wake = done;
    });
  }

  /** Stops the watch and the timer. */
  close(): void {
    this.#stopTicking();
    this.#closeWatcher();
  }

  #closeWatcher(): void {
    const watcher = this.#watcher;
    this.#watcher = undefined;
    try {
      watcher?.close();
    } catch {
      // Already closed.
    }
  }

  async #forward(watcher: Deno.FsWatcher): Promise<void> {
    try {
      for await (const _event of watcher) this.#notify();
    } catch {
      // The watch broke (its directory went away, say): poll until the next aim.
    }
    if (this.#watcher === watcher) {
      this.#watcher = undefined;
      this.#notify();
    }
  }

  #notify(): void {
    this.#pending = true;
    this.#wake?.();
  }

  #stopTicking(): void {
    this.#tick?.alarm.cancel();
    this.#tick = undefined;
  }
}

type State = { text: string } | { error: string };

/** What changes when the file is replaced or written: inode, size and modification time. */
function identity(path: string): string {
  try {
    const info = Deno.statSync(path);
    return `${info.ino}:${info.size}:${info.mtime?.getTime()}`;
  } catch (error) {
    return `missing: ${error instanceof Error ? error.name : error}`;
  }
}

function sameState(a: State, b: State): boolean {
  return "text" in a ? "text" in b && a.text === b.text : "error" in b;
}

/**
 * The file's content. Synchronous on purpose: a small local file, and Deno's asynchronous file
 * calls start a thread pool that would stay in the idle process.
 */
function readState(path: string): State {
  try {
    return { text: Deno.readTextFileSync(path) };
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
  let state = readState(path);
  for (let read = 1; read < 5 && !signal.aborted; read++) {
    await sleepFor(settleMs, signal);
    const again = readState(path);
    if (sameState(again, state)) return again;
    state = again;
  }
  return signal.aborted ? undefined : state;
}
