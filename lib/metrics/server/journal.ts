/**
 * The file of what `aggregate-metrics` has accepted, so that a restarted server (after a crash,
 * or a container restart with its `emptyDir` kept) starts with every attempt it had
 * acknowledged, including those of nodes that finished long ago and will never send them again.
 *
 * One JSON object per line: a result, or a record a compaction wrote (`store_snapshot.ts`). A
 * stream's results are appended before the stream is acknowledged, so an acknowledged attempt is
 * in the file even if the process dies the next instant.
 *
 * Bounded: once the file grows past its bound (`compactAtBytes`, or twice its size after the
 * last compaction if that is more), it is rewritten from the store's compacted state (the current
 * runs' results and the counters of older runs) into a new file that then replaces it, so a crash
 * mid-way leaves the old file whole. Reading it back streams it line by line.
 *
 * @module
 */
import { isCompactionRecord, type JournalRecord } from "./store_snapshot.ts";

/** What reopening a journal found. */
export interface JournalReplay {
  /** Records read and handed over. */
  records: number;
  /** Lines that were neither results nor compaction records (a line cut short by a crash). */
  skipped: number;
}

/** Options for {@linkcode MetricsJournal.open}. */
export interface MetricsJournalOptions {
  /**
   * The size past which the file is compacted, in bytes (or twice its size after the last
   * compaction, if that is more).
   * @default {67_108_864}
   */
  compactAtBytes?: number;
  /** The records that rebuild the state now (the store's), written when compacting. */
  snapshot?: () => Iterable<JournalRecord>;
  /**
   * Told when a compaction fails: the appended results are on disk all the same (the old file
   * stays and keeps growing until the next try).
   * @default {ignores it}
   */
  onCompactError?: (error: JournalError) => void;
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
  #bytes: number;
  #compactAt: number;
  readonly #minCompactAt: number;
  #snapshot?: () => Iterable<JournalRecord>;
  readonly #onCompactError?: (error: JournalError) => void;
  #compactions = 0;

  private constructor(
    path: string,
    file: Deno.FsFile,
    bytes: number,
    options: MetricsJournalOptions,
  ) {
    this.path = path;
    this.#file = file;
    this.#bytes = bytes;
    this.#minCompactAt = options.compactAtBytes ?? 64 << 20;
    this.#compactAt = this.#minCompactAt;
    this.#snapshot = options.snapshot;
    this.#onCompactError = options.onCompactError;
  }

  /**
   * Opens (creating it if needed) the journal at `path`, streaming what it holds to `replay`
   * one record at a time, oldest first.
   *
   * @throws {JournalError} When the file cannot be read or opened for appending.
   */
  static async open(
    path: string,
    replay: (record: JournalRecord) => void,
    options: MetricsJournalOptions = {},
  ): Promise<{ journal: MetricsJournal } & JournalReplay> {
    let read = { records: 0, skipped: 0, bytes: 0, endsWithNewline: true };
    try {
      read = await readLines(await Deno.open(path), replay);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw openError(path, error);
    }
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { append: true, create: true });
    } catch (error) {
      throw openError(path, error);
    }
    // A line cut short by a crash must not run into the next one.
    if (!read.endsWithNewline) read.bytes += writeAll(file, encoder.encode("\n"));
    const journal = new MetricsJournal(path, file, read.bytes, options);
    return { journal, records: read.records, skipped: read.skipped };
  }

  /** How many times the file was compacted since it was opened. */
  get compactions(): number {
    return this.#compactions;
  }

  /** Sets where a compaction takes the state from (the store, once restored). */
  compactFrom(snapshot: () => Iterable<JournalRecord>): void {
    this.#snapshot = snapshot;
  }

  /**
   * Appends `results`, one line each, and returns once they are written to the file; compacts
   * the file first when it has grown past its bound.
   */
  append(results: readonly JournalRecord[]): void {
    if (results.length === 0) return;
    const bytes = encoder.encode(results.map((result) => JSON.stringify(result)).join("\n") + "\n");
    try {
      writeAll(this.#file, bytes);
    } catch (error) {
      throw new JournalError(
        `Cannot write to the state file ${this.path} (${(error as Error).message}); ` +
          "free space on its volume or point --state-file elsewhere.",
      );
    }
    this.#bytes += bytes.length;
    if (!this.#snapshot || this.#bytes <= this.#compactAt) return;
    try {
      this.compact();
    } catch (error) {
      if (!(error instanceof JournalError)) throw error;
      this.#onCompactError?.(error);
    }
  }

  /**
   * Rewrites the file from the snapshot: into `<path>.compacting`, synced, then renamed over
   * the file. On failure the old file stays and is appended to, and the next try waits until it
   * has doubled.
   *
   * @throws {JournalError} When the new file cannot be written.
   */
  compact(): void {
    if (!this.#snapshot) return;
    const temporary = `${this.path}.compacting`;
    let written = 0;
    try {
      using file = Deno.openSync(temporary, { write: true, create: true, truncate: true });
      let chunk: string[] = [];
      let chunkLength = 0;
      for (const record of this.#snapshot()) {
        const line = JSON.stringify(record);
        chunk.push(line);
        chunkLength += line.length;
        if (chunkLength > 1 << 20) {
          written += writeAll(file, encoder.encode(chunk.join("\n") + "\n"));
          chunk = [];
          chunkLength = 0;
        }
      }
      if (chunk.length > 0) written += writeAll(file, encoder.encode(chunk.join("\n") + "\n"));
      file.syncSync();
      Deno.renameSync(temporary, this.path);
    } catch (error) {
      this.#compactAt = this.#bytes * 2;
      throw new JournalError(
        `Cannot compact the state file ${this.path} into ${temporary} ` +
          `(${
            (error as Error).message
          }); free space on its volume or point --state-file elsewhere.`,
      );
    }
    this.#file.close();
    this.#file = Deno.openSync(this.path, { append: true });
    this.#bytes = written;
    this.#compactAt = Math.max(this.#minCompactAt, written * 2);
    this.#compactions++;
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

/** Parses one line: a record, or undefined for a line that is neither a result nor a record. */
export function parseJournalLine(line: string): JournalRecord | undefined {
  try {
    const value = JSON.parse(line);
    if (
      typeof value?.attemptId === "string" && typeof value.node === "string" &&
      typeof value.image === "string" && typeof value.outcome === "string"
    ) return value;
    if (isCompactionRecord(value)) return value;
  } catch {
    // not JSON
  }
  return undefined;
}

/**
 * Streams the file's lines to `replay`, from its start, without holding more than a chunk and a
 * line; the stream closes the file at its end.
 */
async function readLines(
  file: Deno.FsFile,
  replay: (record: JournalRecord) => void,
): Promise<JournalReplay & { bytes: number; endsWithNewline: boolean }> {
  const decoder = new TextDecoder();
  let rest = "";
  let records = 0, skipped = 0, bytes = 0;
  const take = (line: string) => {
    if (line.trim() === "") return;
    const record = parseJournalLine(line);
    if (record) {
      records++;
      replay(record);
    } else skipped++;
  };
  let last = 10;
  for await (const chunk of file.readable) {
    bytes += chunk.length;
    last = chunk[chunk.length - 1];
    const text = rest + decoder.decode(chunk, { stream: true });
    const lines = text.split("\n");
    rest = lines.pop()!;
    for (const line of lines) take(line);
  }
  take(rest + decoder.decode());
  return { records, skipped, bytes, endsWithNewline: bytes === 0 || last === 10 };
}

function writeAll(file: Deno.FsFile, bytes: Uint8Array): number {
  let written = 0;
  while (written < bytes.length) written += file.writeSync(bytes.subarray(written));
  return written;
}

function openError(path: string, error: unknown): JournalError {
  return new JournalError(
    `Cannot use ${path} as the state file (${(error as Error).message}); point --state-file ` +
      "at a writable file, e.g. on an emptyDir volume, or leave it out to keep results in memory only.",
  );
}
