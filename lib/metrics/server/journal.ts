/**
 * An append-only file of the attempts `aggregate-metrics` has accepted, so that a restarted
 * server (after a crash, or a container restart with its `emptyDir` kept) starts with every
 * attempt it had acknowledged, including those of nodes that finished long ago and will never
 * send them again.
 *
 * One JSON object per line. A stream's results are written before the stream is acknowledged,
 * so an acknowledged attempt is in the file even if the process dies the next instant.
 *
 * @module
 */
import type { MetricsResult } from "../protocol.ts";

/** What reopening a journal found. */
export interface JournalReplay {
  /** The results in the file, oldest first. */
  results: MetricsResult[];
  /** Lines that were not results (a line cut short by a crash is the usual one). */
  skipped: number;
}

/** The journal file could not be opened or written. */
export class JournalError extends Error {
  /** Creates the error with a sentence naming the file and the fix. */
  constructor(message: string) {
    super(message);
    this.name = "JournalError";
  }
}

const encoder = new TextEncoder();

/** An open journal; append to it, close it with `using` or {@linkcode MetricsJournal.close}. */
export class MetricsJournal implements Disposable {
  /** The file's path. */
  readonly path: string;
  #file: Deno.FsFile;

  private constructor(path: string, file: Deno.FsFile) {
    this.path = path;
    this.#file = file;
  }

  /**
   * Opens (creating it if needed) the journal at `path` and reads back what it holds.
   *
   * @throws {JournalError} When the file cannot be read or opened for appending.
   */
  static async open(path: string): Promise<{ journal: MetricsJournal } & JournalReplay> {
    let text = "";
    try {
      text = await Deno.readTextFile(path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw openError(path, error);
    }
    const replay = parseJournal(text);
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { append: true, create: true });
    } catch (error) {
      throw openError(path, error);
    }
    // A line cut short by a crash must not run into the next one.
    if (text.length > 0 && !text.endsWith("\n")) writeAll(file, encoder.encode("\n"));
    return { journal: new MetricsJournal(path, file), ...replay };
  }

  /** Appends `results`, one line each, and returns once they are written to the file. */
  append(results: readonly MetricsResult[]): void {
    if (results.length === 0) return;
    const text = results.map((result) => JSON.stringify(result)).join("\n") + "\n";
    try {
      writeAll(this.#file, encoder.encode(text));
    } catch (error) {
      throw new JournalError(
        `Cannot write to the state file ${this.path} (${(error as Error).message}); ` +
          "free space on its volume or point --state-file elsewhere.",
      );
    }
  }

  /** Closes the file. */
  close(): void {
    this.#file.close();
  }

  /** Closes the file. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** Reads journal text back into results; lines that are not results are counted, not fatal. */
export function parseJournal(text: string): JournalReplay {
  const results: MetricsResult[] = [];
  let skipped = 0;
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    try {
      const value = JSON.parse(line);
      if (
        typeof value?.attemptId === "string" && typeof value.node === "string" &&
        typeof value.image === "string" && typeof value.outcome === "string"
      ) {
        results.push(value as MetricsResult);
        continue;
      }
    } catch {
      // counted below
    }
    skipped++;
  }
  return { results, skipped };
}

function writeAll(file: Deno.FsFile, bytes: Uint8Array): void {
  let written = 0;
  while (written < bytes.length) written += file.writeSync(bytes.subarray(written));
}

function openError(path: string, error: unknown): JournalError {
  return new JournalError(
    `Cannot use ${path} as the state file (${(error as Error).message}); point --state-file ` +
      "at a writable file, e.g. on an emptyDir volume, or leave it out to keep results in memory only.",
  );
}
