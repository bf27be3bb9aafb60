/**
 * Structured event logs: one line per event, as readable `key=value` text or as JSON.
 *
 * @module
 */
import { formatIsoTime } from "./iso_time.ts";

/** How log lines are written. */
export type LogFormat = "text" | "json";

/** The fields of one event; `undefined` fields are left out. */
export type LogFields = Record<string, string | number | boolean | undefined>;

/** Options for {@linkcode Logger}. */
export interface LoggerOptions {
  /**
   * `text` for people, `json` for log pipelines.
   * @default {"text"}
   */
  format?: LogFormat;
  /**
   * Whether `debug` lines are written.
   * @default {false}
   */
  debug?: boolean;
  /**
   * Where each finished line goes.
   * @default writes to standard error
   */
  write?: (line: string) => void;
  /**
   * The time stamped on each line, in milliseconds since the epoch.
   * @default {Date.now}
   */
  now?: () => number;
}

const encoder = new TextEncoder();

/** Writes one structured line per event. */
export class Logger {
  readonly #format: LogFormat;
  readonly #debug: boolean;
  readonly #write: (line: string) => void;
  readonly #now: () => number;

  /** Creates a logger. */
  constructor(options: LoggerOptions = {}) {
    this.#format = options.format ?? "text";
    this.#debug = options.debug ?? false;
    this.#write = options.write ?? ((line) => Deno.stderr.writeSync(encoder.encode(line + "\n")));
    this.#now = options.now ?? Date.now;
  }

  /** Logs a detail that only `--debug` shows. */
  debug(message: string, fields: LogFields = {}): void {
    if (this.#debug) this.#log("debug", message, fields);
  }

  /** Logs an event of the normal course of a run. */
  info(message: string, fields: LogFields = {}): void {
    this.#log("info", message, fields);
  }

  /** Logs something that went wrong but does not stop the run. */
  warn(message: string, fields: LogFields = {}): void {
    this.#log("warn", message, fields);
  }

  /** Logs a failure. */
  error(message: string, fields: LogFields = {}): void {
    this.#log("error", message, fields);
  }

  #log(level: string, message: string, fields: LogFields): void {
    const time = formatIsoTime(this.#now());
    const defined = Object.entries(fields).filter(([, value]) => value !== undefined);
    if (this.#format === "json") {
      this.#write(JSON.stringify({ time, level, msg: message, ...Object.fromEntries(defined) }));
      return;
    }
    const pairs = defined.map(([key, value]) => `${key}=${formatValue(value!)}`);
    this.#write([time, level.toUpperCase().padEnd(5), message, ...pairs].join(" "));
  }
}

function formatValue(value: string | number | boolean): string {
  const text = String(value);
  return /^[^\s"=]+$/.test(text) ? text : JSON.stringify(text);
}

/** Formats a byte count for people: `0 B`, `512 B`, `1.5 KiB`, `30.0 MiB`, `2.10 GiB`. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  if (unit === 0) return `${value} B`;
  return `${value.toFixed(value < 10 && unit >= 3 ? 2 : 1)} ${units[unit]}`;
}
