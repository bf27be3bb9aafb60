/**
 * The image list file: one image reference per line, with `#` comments.
 *
 * @module
 */

import {
  type ImageReference,
  InvalidImageReferenceError,
  parseImageReference,
} from "./reference.ts";

/** One image to prefetch, with where it came from. */
export interface ImageListEntry {
  /** The parsed, normalised reference. */
  reference: ImageReference;
  /** Where the image was written, e.g. `images.txt:3` or a label for a command-line argument. */
  source: string;
}

/** A line of an image list that is not a valid image reference. */
export interface ImageListProblem {
  /** Where the line is, e.g. `images.txt:3`. */
  source: string;
  /** The line's text without surrounding whitespace and trailing comment. */
  text: string;
  /** Why it is invalid, naming the text and how to fix it. */
  message: string;
}

/** What {@linkcode parseImageList} found: valid entries and invalid lines, both in file order. */
export interface ParsedImageList {
  /** The valid image references, in file order, duplicates included. */
  entries: ImageListEntry[];
  /** The lines that are not valid image references. */
  problems: ImageListProblem[];
}

/** A `#` at the start of the line or after whitespace starts a comment. */
const COMMENT = /(?:^|\s)#.*$/s;

/**
 * Parses the text of an image list into entries, collecting invalid lines as problems.
 *
 * Each non-blank line holds one image reference. A `#` at the start of a line or after
 * whitespace starts a comment. Surrounding whitespace, CRLF line endings and a leading UTF-8 BOM
 * are ignored. Invalid lines never throw: they are returned as problems so that every mistake
 * can be reported at once, and the valid lines are still returned.
 *
 * @example Usage
 * ```ts
 * import { parseImageList } from "./list.ts";
 *
 * const { entries, problems } = parseImageList("debian:12\n# tools\nbusybox # for debugging\n", "images.txt");
 * entries.map((e) => e.source); // ["images.txt:1", "images.txt:3"]
 * problems; // []
 * ```
 *
 * @param text The file's contents.
 * @param sourceName The file name (or other label) used in each entry's `source`.
 * @returns The valid entries and the problems, each in line order.
 */
export function parseImageList(text: string, sourceName: string): ParsedImageList {
  const entries: ImageListEntry[] = [];
  const problems: ImageListProblem[] = [];
  const lines = text.replace(/^\uFEFF/, "").split("\n");
  lines.forEach((line, index) => {
    const content = line.replace(COMMENT, "").trim();
    if (content === "") return;
    const source = `${sourceName}:${index + 1}`;
    try {
      entries.push({ reference: parseImageReference(content), source });
    } catch (error) {
      if (!(error instanceof InvalidImageReferenceError)) throw error;
      problems.push({ source, text: content, message: error.message });
    }
  });
  return { entries, problems };
}

/**
 * Removes repeated images, keeping the first entry for each normalised reference, in order.
 *
 * References that differ only in spelling are the same image: `debian`,
 * `docker.io/library/debian` and `index.docker.io/library/debian:latest` all normalise to
 * `docker.io/library/debian:latest`.
 *
 * @param entries The entries, e.g. from {@linkcode parseImageList}.
 * @returns A new array with the first entry of each image, in the original order.
 */
export function dedupeImages(entries: readonly ImageListEntry[]): ImageListEntry[] {
  const seen = new Set<string>();
  return entries.filter((entry) => {
    if (seen.has(entry.reference.normalized)) return false;
    seen.add(entry.reference.normalized);
    return true;
  });
}
