/**
 * Who pinned an image: the labels image-prefetcher keeps beside containerd's pin label on an
 * image's ID record, so that it releases only the pins it made.
 *
 * containerd has one pin label per record (`io.cri-containerd.pinned=pinned`), shared by every
 * tool. Each owner (one image-prefetcher instance, `--pin-owner`) adds its own label
 * `image-prefetcher.stackrox.io/pinned-by.<owner>`, and whoever set the pin label when it was
 * absent adds `image-prefetcher.stackrox.io/set-pin`. Releasing removes the owner's label, and
 * the pin label itself only when no other owner is left and an image-prefetcher set it: a pin
 * that was there before any of ours (another tool's) stays. Pure: no I/O.
 *
 * @module
 */

/** The label containerd's CRI plugin reads to report an image as pinned. */
export const PINNED_LABEL_KEY = "io.cri-containerd.pinned";
/** The value {@linkcode PINNED_LABEL_KEY} must have. */
export const PINNED_LABEL_VALUE = "pinned";
/** The prefix of an owner's label; the owner's name follows it. */
export const PIN_OWNER_LABEL_PREFIX = "image-prefetcher.stackrox.io/pinned-by.";
/** Set when an image-prefetcher set the pin label (it was absent), so one of ours may clear it. */
export const PIN_SET_LABEL_KEY = "image-prefetcher.stackrox.io/set-pin";

/** What to write on a record: labels to set, and labels to clear. */
export interface LabelChange {
  /** Labels to set to these values. */
  set: Record<string, string>;
  /** Labels to remove. */
  clear: string[];
}

/** Whether `owner` can name a pin owner: a DNS label, like a Kubernetes object name. */
export function isPinOwner(owner: string): boolean {
  return /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(owner);
}

/** The label that records `owner`'s pin. */
export function ownerLabelKey(owner: string): string {
  return `${PIN_OWNER_LABEL_PREFIX}${owner}`;
}

/**
 * The change that pins a record with `labels`, recording `owner` when given.
 *
 * @example
 * ```ts
 * import { pinChange } from "./pin_labels.ts";
 * pinChange({}, "my-images").set;
 * // { "io.cri-containerd.pinned": "pinned",
 * //   "image-prefetcher.stackrox.io/pinned-by.my-images": "true",
 * //   "image-prefetcher.stackrox.io/set-pin": "true" }
 * ```
 */
export function pinChange(labels: Record<string, string>, owner?: string): LabelChange {
  const set: Record<string, string> = { [PINNED_LABEL_KEY]: PINNED_LABEL_VALUE };
  if (owner === undefined) return { set, clear: [] };
  set[ownerLabelKey(owner)] = "true";
  if (labels[PINNED_LABEL_KEY] !== PINNED_LABEL_VALUE) set[PIN_SET_LABEL_KEY] = "true";
  return { set, clear: [] };
}

/**
 * The change that releases `owner`'s pin of a record with `labels`, or `undefined` when
 * `owner` has none there. Clears the pin label only when no other owner is left and an
 * image-prefetcher set it.
 */
export function releaseChange(
  labels: Record<string, string>,
  owner: string,
): LabelChange | undefined {
  const own = ownerLabelKey(owner);
  if (!labels[own]) return undefined;
  const others = Object.keys(labels).filter((key) =>
    key !== own && key.startsWith(PIN_OWNER_LABEL_PREFIX) && labels[key]
  );
  if (others.length > 0 || !labels[PIN_SET_LABEL_KEY]) return { set: {}, clear: [own] };
  return { set: {}, clear: [own, PINNED_LABEL_KEY, PIN_SET_LABEL_KEY] };
}
