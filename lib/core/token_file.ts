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
