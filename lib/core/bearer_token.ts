/**
 * A server's optional bearer token: one comparison, in constant time, shared by every gRPC
 * service (metrics submits, waves admissions) and the HTTP routes.
 *
 * @module
 */
import { timingSafeEqual } from "node:crypto";

/** Says whether a presented token is the server's; always true when the server has none. */
export type TokenCheck = (presented: string | undefined) => boolean;

/**
 * Returns the check for `token`; without a token, every caller is authorized.
 *
 * @example
 * ```ts
 * import { tokenCheck } from "./bearer_token.ts";
 *
 * const authorized = tokenCheck("s3cret");
 * authorized("s3cret"); // true
 * authorized("guess"); // false
 * ```
 */
export function tokenCheck(token: string | undefined): TokenCheck {
  if (!token) return () => true;
  const expected = new TextEncoder().encode(token);
  return (presented) => {
    if (!presented) return false;
    const bytes = new TextEncoder().encode(presented);
    return bytes.length === expected.length && timingSafeEqual(bytes, expected);
  };
}

/** The token of an `Authorization: Bearer <token>` header value, if it has one. */
export function bearerToken(header: string | null | undefined): string | undefined {
  return header?.replace(/^Bearer\s+/i, "") || undefined;
}
