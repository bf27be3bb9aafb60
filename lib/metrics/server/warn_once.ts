/**
 * Warnings a misbehaving client could repeat thousands of times, logged once per kind.
 *
 * @module
 */
import type { Logger } from "../../core/log.ts";

/** Logs `message` as a warning the first time `kind` is seen, and at debug level after that. */
export type WarnOnce = (
  kind: string,
  message: string,
  fields: Record<string, string | number>,
) => void;

/** Returns a {@linkcode WarnOnce} that remembers the kinds it has warned about. */
export function warnOnce(logger: Logger): WarnOnce {
  const logged = new Set<string>();
  return (kind, message, fields) => {
    if (logged.has(kind)) {
      logger.debug(message, { kind, ...fields });
      return;
    }
    logged.add(kind);
    logger.warn(`${message} (logged once per kind; --debug shows every one)`, { kind, ...fields });
  };
}
