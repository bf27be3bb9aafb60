/**
 * Formats a time as RFC 3339 UTC text, as `Date#toISOString` does, with integer arithmetic only.
 *
 * `Date#toISOString` is fine in a process that pulls, but its first call pulls about 1.5 MiB of
 * Deno's date and time code into memory, and `keep`'s idle process logs (see
 * `bench/sleep_memory.ts`). This is the civil-from-days computation of Howard Hinnant's
 * "chrono-Compatible Low-Level Date Algorithms", over the proleptic Gregorian calendar.
 *
 * @module
 */

const DAY_MS = 86_400_000;
const DAYS_PER_ERA = 146_097;
/** Days from 0000-03-01 (the start of an era) to 1970-01-01. */
const EPOCH_SHIFT_DAYS = 719_468;

/**
 * `ms` (milliseconds since the epoch, finite) as `YYYY-MM-DDTHH:MM:SS.mmmZ`, like
 * `new Date(ms).toISOString()` for years 0 to 9999; fractions of a millisecond are dropped.
 *
 * @example
 * ```ts
 * import { formatIsoTime } from "./iso_time.ts";
 * console.assert(formatIsoTime(0) === "1970-01-01T00:00:00.000Z");
 * ```
 */
export function formatIsoTime(ms: number): string {
  const whole = Math.floor(ms);
  const days = Math.floor(whole / DAY_MS);
  const { year, month, day } = civilFromDays(days);
  let rest = whole - days * DAY_MS;
  const hours = Math.floor(rest / 3_600_000);
  rest -= hours * 3_600_000;
  const minutes = Math.floor(rest / 60_000);
  rest -= minutes * 60_000;
  const seconds = Math.floor(rest / 1_000);
  const millis = rest - seconds * 1_000;
  return `${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)}T${pad(hours, 2)}:${pad(minutes, 2)}:${
    pad(seconds, 2)
  }.${pad(millis, 3)}Z`;
}

/** The Gregorian date `days` after 1970-01-01. */
function civilFromDays(days: number): { year: number; month: number; day: number } {
  const shifted = days + EPOCH_SHIFT_DAYS;
  const era = Math.floor(shifted / DAYS_PER_ERA);
  const dayOfEra = shifted - era * DAYS_PER_ERA;
  const yearOfEra = Math.floor(
    (dayOfEra - Math.floor(dayOfEra / 1_460) + Math.floor(dayOfEra / 36_524) -
      Math.floor(dayOfEra / 146_096)) / 365,
  );
  const dayOfYear = dayOfEra -
    (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100));
  const monthFromMarch = Math.floor((5 * dayOfYear + 2) / 153);
  const day = dayOfYear - Math.floor((153 * monthFromMarch + 2) / 5) + 1;
  const month = monthFromMarch < 10 ? monthFromMarch + 3 : monthFromMarch - 9;
  return { year: yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day };
}

function pad(value: number, width: number): string {
  let text = String(value);
  while (text.length < width) text = "0" + text;
  return text;
}
