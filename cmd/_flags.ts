/**
 * The flag handling both commands share: a table of flags (type, default, value name, help line),
 * parsing with errors that name the flag and the fix, typed readers for durations, whole numbers
 * and one-of choices, and the rows of `--help`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { parseDuration } from "../lib/core/duration.ts";
import { ExitCode, InvalidInputError } from "../lib/core/exit_codes.ts";

/** One flag: its type, default, the name of its value in `--help`, and its help line. */
export interface FlagSpec {
  /** `string` flags take a value; `boolean` flags do not. */
  type: "string" | "boolean";
  /** The value used when the flag is not given, shown in `--help`. */
  default?: string;
  /** What the value looks like in `--help` (`duration`, `path`, `a|b`). */
  value?: string;
  /** One sentence for `--help`. */
  help: string;
}

/** A command's flags by long name (without `--`). */
export type FlagTable = Record<string, FlagSpec>;

/**
 * Parsed flags, read by name: defaults filled in, every reader throwing an
 * {@linkcode InvalidInputError} that names the flag and what it accepts.
 */
export class ParsedFlags<T extends FlagTable> {
  readonly #table: T;
  readonly #values: Record<string, string | boolean | undefined>;
  /** The arguments that are not flags. */
  readonly positionals: string[];

  /** Wraps what `parseArgs` returned for `table`. */
  constructor(
    table: T,
    values: Record<string, string | boolean | undefined>,
    positionals: string[],
  ) {
    this.#table = table;
    this.#values = values;
    this.positionals = positionals;
  }

  /** A string flag's value, or its default, or `undefined`. */
  string(name: keyof T & string): string | undefined {
    const value = this.#values[name];
    return typeof value === "string" ? value : this.#table[name].default;
  }

  /** Whether the flag was on the command line (its default does not count). */
  given(name: keyof T & string): boolean {
    return this.#values[name] !== undefined;
  }

  /** Whether a boolean flag was given. */
  boolean(name: keyof T & string): boolean {
    return this.#values[name] === true;
  }

  /** A duration flag (`30s`, `5m`, `1h30m`) in milliseconds. */
  duration(name: keyof T & string): number {
    try {
      return parseDuration(this.string(name)!);
    } catch (error) {
      throw new InvalidInputError(`--${name}: ${(error as Error).message}`);
    }
  }

  /** A whole-number flag within `[min, max]`. */
  wholeNumber(name: keyof T & string, min: number, max: number, hint = ""): number {
    const text = this.string(name)!;
    const value = Number(text);
    if (!/^\d+$/.test(text) || value < min || value > max) {
      throw new InvalidInputError(
        `--${name} must be a whole number from ${min} to ${max}${hint}, not "${text}".`,
      );
    }
    return value;
  }

  /** A flag that must be one of `choices` (or absent, when it has no default). */
  oneOf<C extends string>(name: keyof T & string, choices: readonly C[], hint = ""): C | undefined {
    const value = this.string(name);
    if (value === undefined || (choices as readonly string[]).includes(value)) {
      return value as C | undefined;
    }
    const list = choices.length === 2 ? choices.join(" or ") : `one of ${choices.join(", ")}`;
    throw new InvalidInputError(`--${name} must be ${list}, not "${value}"${hint}.`);
  }
}

/**
 * Parses `args` against `table` for `command` (e.g. `fetch`); unknown flags and missing values
 * throw an {@linkcode InvalidInputError} that points at `--help`.
 *
 * @example
 * ```ts
 * import { parseFlags } from "./_flags.ts";
 *
 * const table = {
 *   timeout: { type: "string", default: "30s", value: "duration", help: "How long to wait." },
 * } as const;
 * const flags = parseFlags("demo", table, ["--timeout", "1m"]);
 * console.log(flags.duration("timeout")); // 60000
 * ```
 */
export function parseFlags<T extends FlagTable>(
  command: string,
  table: T,
  args: string[],
  options: { positionals?: boolean } = {},
): ParsedFlags<T> {
  try {
    const parsed = parseArgs({
      args,
      options: Object.fromEntries(
        Object.entries(table).map(([name, spec]) => [name, { type: spec.type }]),
      ),
      allowPositionals: options.positionals ?? false,
      strict: true,
    });
    return new ParsedFlags(table, parsed.values, parsed.positionals);
  } catch (error) {
    const message = (error as Error).message.replace(/\.$/, "");
    throw new InvalidInputError(
      `${message}; run "image-prefetcher ${command} --help" for the flags.`,
    );
  }
}

/** The `--help` lines of a flag table, each padded to `width` before its help sentence. */
export function helpRows(table: FlagTable, width: number): string[] {
  return Object.entries(table).map(([name, spec]) => {
    const left = `  --${name}${spec.value ? ` ${spec.value}` : ""}`;
    const def = spec.default !== undefined ? ` (default ${spec.default})` : "";
    return `${left.padEnd(width)}${spec.help}${def}`;
  });
}

/**
 * Runs `parse`; on an {@linkcode InvalidInputError} prints `image-prefetcher <command>: <message>`
 * to standard error and exits with status 2. Any other error is a bug and propagates.
 */
export async function orExitOnInvalidInput<R>(
  command: string,
  parse: () => R | Promise<R>,
): Promise<R> {
  try {
    return await parse();
  } catch (error) {
    if (!(error instanceof InvalidInputError)) throw error;
    console.error(`image-prefetcher ${command}: ${error.message}`);
    Deno.exit(ExitCode.InvalidInput);
  }
}
