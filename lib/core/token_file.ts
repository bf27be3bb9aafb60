/**
 * Reads the bearer token shared by `fetch --metrics-token-file` and
 * `aggregate-metrics --token-file`, with the same rules on both sides.
 *
 * @module
 */
import { InvalidInputError } from "./exit_codes.ts";

/**
 * Returns the one token held in `path` (surrounding whitespace ignored). Throws
 * {@linkcode InvalidInputError} naming `flag`, the file and the fix when it cannot be read, is
 * empty or holds more than one word.
 */
export async function readTokenFile(path: string, flag: string): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new InvalidInputError(
      `Cannot read ${flag} ${path} (${(error as Error).message}); point it at a readable file ` +
        "holding the bearer token.",
    );
  }
  const token = text.trim();
  if (!token || /\s/.test(token)) {
    throw new InvalidInputError(
      `${flag} ${path} must hold one token without spaces; it holds ${
        token ? "several words" : "nothing"
      }.`,
    );
  }
  return token;
}

/** A bearer token to send: fixed, or read anew (a rotated projected token) on every call. */
export type TokenSource = string | (() => string);

/** The token to send now. */
export function currentToken(source: TokenSource | undefined): string | undefined {
  return typeof source === "function" ? source() : source;
}

/**
 * Reads the token in `path` now (throwing like {@linkcode readTokenFile}), and returns a source
 * that reads it again on every call, as the kubelet rewrites a projected token before it expires.
 * A read that fails later (the file is being replaced) gives the last token read.
 */
export async function tokenFileSource(path: string, flag: string): Promise<() => string> {
  let last = await readTokenFile(path, flag);
  return () => {
    try {
      const token = Deno.readTextFileSync(path).trim();
      if (token && !/\s/.test(token)) last = token;
    } catch {
      // Keep the last token: the kubelet swaps the file's directory atomically, so this is rare.
    }
    return last;
  };
}
