/**
 * Recognises a registry's rate limit in a pull error: containerd passes the registry's
 * `429 Too Many Requests` through, CRI-O the error code `toomanyrequests`.
 *
 * @module
 */

/**
 * Tells whether a pull failed because the registry rate-limited it.
 *
 * @example
 * ```ts
 * import { isRateLimited } from "./rate_limit.ts";
 * isRateLimited("unexpected status from HEAD request to https://r/v2/a/manifests/1: 429 Too Many Requests"); // true
 * isRateLimited("toomanyrequests: You have reached your pull rate limit."); // true
 * ```
 */
export function isRateLimited(error: string): boolean {
  return /\b429 Too Many Requests\b|\btoomanyrequests\b/i.test(error);
}
