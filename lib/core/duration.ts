/**
 * Go-style durations (`30s`, `5m`, `1h30m`) for flags and configuration.
 *
 * @module
 */

/** Nanoseconds per unit, as Go's `time.ParseDuration` defines them. */
const UNIT_NANOSECONDS: Readonly<Record<string, bigint>> = {
  ns: 1n,
  us: 1_000n,
  "\u00b5s": 1_000n, // U+00B5 MICRO SIGN
  "\u03bcs": 1_000n, // U+03BC GREEK SMALL LETTER MU
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};

const UNITS_TEXT = "ns, us, µs, ms, s, m, h";
const MAX_NANOSECONDS = 2n ** 63n - 1n;
const NANOSECONDS_PER_MILLISECOND = 1_000_000n;

/** One `<number><unit>` piece of a duration, e.g. `1.5h` or `30s`. */
const COMPONENT = /(\d*)(?:\.(\d*))?([^\d.]*)/y;

/** Thrown by {@linkcode parseDuration} when the text is not a valid duration. */
export class DurationError extends Error {
  /** The text that could not be parsed. */
  readonly text: string;

  /**
   * Creates the error for `text`, explaining `problem`.
   *
   * @param text The text that could not be parsed.
   * @param problem What is wrong with it, as a sentence fragment.
   */
  constructor(text: string, problem: string) {
    super(
      `${JSON.stringify(text)} is not a valid duration: ${problem}; ` +
        `write it like 30s, 5m, 1h30m or 250ms.`,
    );
    this.name = "DurationError";
    this.text = text;
  }
}

/**
 * Parses a Go-style duration such as `300ms`, `1h30m` or `2m3.5s` into milliseconds.
 *
 * Follows Go's `time.ParseDuration`: a sequence of decimal numbers, each with an optional
 * fraction and a unit (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`); a bare `0` is allowed without a
 * unit. Unlike Go, negative durations are rejected. Surrounding whitespace is ignored.
 *
 * @example Usage
 * ```ts
 * import { parseDuration } from "./duration.ts";
 *
 * parseDuration("1h30m"); // 5_400_000
 * parseDuration("250ms"); // 250
 * ```
 *
 * @param text The duration text.
 * @returns The duration in milliseconds (fractional for sub-millisecond precision).
 * @throws {DurationError} When the text is empty, negative, lacks a unit or is malformed.
 */
export function parseDuration(text: string): number {
  const trimmed = text.trim();
  if (trimmed === "") throw new DurationError(text, "it is empty");
  let rest = trimmed;
  if (rest.startsWith("-")) throw new DurationError(text, "durations cannot be negative");
  if (rest.startsWith("+")) rest = rest.slice(1);
  if (rest === "0") return 0;
  if (rest === "") throw new DurationError(text, "it has no number");

  let total = 0n;
  COMPONENT.lastIndex = 0;
  while (COMPONENT.lastIndex < rest.length) {
    const match = COMPONENT.exec(rest);
    // The pattern can match the empty string; treat "nothing consumed" as garbage.
    if (match === null || match[0] === "") {
      throw new DurationError(
        text,
        `unexpected ${JSON.stringify(rest.slice(COMPONENT.lastIndex))}`,
      );
    }
    const [piece, whole, fraction = "", unit] = match;
    if (whole === "" && fraction === "") {
      throw new DurationError(text, `${JSON.stringify(piece)} has no number before its unit`);
    }
    if (unit === "") {
      throw new DurationError(text, `${JSON.stringify(piece)} has no unit (one of ${UNITS_TEXT})`);
    }
    const unitNanoseconds = UNIT_NANOSECONDS[unit];
    if (unitNanoseconds === undefined) {
      throw new DurationError(
        text,
        `unknown unit ${JSON.stringify(unit)} (use one of ${UNITS_TEXT})`,
      );
    }
    total += BigInt(whole || "0") * unitNanoseconds;
    if (fraction !== "") {
      // Truncates like Go does, so "1.0000000001s" stays 1s.
      total += (BigInt(fraction) * unitNanoseconds) / 10n ** BigInt(fraction.length);
    }
    if (total > MAX_NANOSECONDS) {
      throw new DurationError(text, "it is too large (the maximum is about 2562047h)");
    }
  }
  const wholeMs = total / NANOSECONDS_PER_MILLISECOND;
  const remainderNs = total % NANOSECONDS_PER_MILLISECOND;
  return Number(wholeMs) + Number(remainderNs) / 1e6;
}

/**
 * Formats milliseconds as a compact Go-style duration such as `1h30m`, `1.5s` or `250ms`.
 *
 * Values under one second are rounded to whole milliseconds (`250ms`); values that round to zero
 * are `0s`. Longer values are rounded to a tenth of a second and written as hours, minutes and
 * seconds, dropping trailing zero components (`1h30m`, `5m`, `1h0m5s`). The result is always
 * accepted by {@linkcode parseDuration} (for non-negative values).
 *
 * @example Usage
 * ```ts
 * import { formatDuration } from "./duration.ts";
 *
 * formatDuration(5_400_000); // "1h30m"
 * formatDuration(1_500); // "1.5s"
 * ```
 *
 * @param ms The duration in milliseconds; negative values get a leading `-`.
 * @returns The formatted duration.
 * @throws {RangeError} When `ms` is not a finite number.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) {
    throw new RangeError(
      `Cannot format ${ms} as a duration: pass a finite number of milliseconds.`,
    );
  }
  if (ms < 0) {
    const positive = formatDuration(-ms);
    return positive === "0s" ? positive : `-${positive}`;
  }
  const roundedMs = Math.round(ms);
  if (roundedMs === 0) return "0s";
  if (roundedMs < 1000) return `${roundedMs}ms`;

  const tenths = Math.round(ms / 100);
  const hours = Math.floor(tenths / 36_000);
  const minutes = Math.floor((tenths % 36_000) / 600);
  const secondTenths = tenths % 600;
  const seconds = secondTenths % 10 === 0
    ? String(secondTenths / 10)
    : `${Math.floor(secondTenths / 10)}.${secondTenths % 10}`;

  let out = "";
  if (hours > 0) out += `${hours}h`;
  // A zero minute between hours and seconds stays, as in Go's "1h0m5s".
  if (minutes > 0 || (hours > 0 && secondTenths > 0)) out += `${minutes}m`;
  if (secondTenths > 0) out += `${seconds}s`;
  return out;
}
