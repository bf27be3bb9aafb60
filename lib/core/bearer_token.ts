/**
 * Compares a presented bearer token with the expected one in constant time.
 *
 * @module
 */
import { timingSafeEqual } from "node:crypto";

/**
 * Returns a check that accepts every caller when `expected` is undefined, and otherwise only the
 * one presenting `expected` (as `Bearer <token>` or bare).
 *
 * @example
 * ```ts
 * import { bearerTokenCheck } from "./bearer_token.ts";
 * const check = bearerTokenCheck("s3cret");
 * check("Bearer s3cret"); // true
 * check(undefined); // false
 * ```
 */
export function bearerTokenCheck(
  expected: string | undefined,
): (presented: string | undefined) => boolean {
  if (!expected) return () => true;
  const want = new TextEncoder().encode(expected);
  return (presented) => {
    if (!presented) return false;
    const got = new TextEncoder().encode(presented.replace(/^Bearer\s+/i, ""));
    return got.length === want.length && timingSafeEqual(got, want);
  };
}
