/**
 * What the progress monitor needs from a runtime: how many bytes have arrived for the images
 * being pulled. Declared here, beside its consumer; containerd's content service implements it in
 * `lib/runtime/containerd_progress.ts`, and a runtime that shows nothing (CRI-O) simply has none.
 *
 * @module
 */

/** Bytes that have arrived for one image's pull, as far as the runtime shows. */
export interface ImageProgress {
  /** Bytes of the image's blobs received so far: committed blobs' sizes + active ingests' offsets. */
  receivedBytes: number;
  /** Total bytes of the image's config and layer blobs, from its manifest(s), when known. */
  totalBytes?: number;
  /** How many of its blobs are downloading right now. */
  activeDownloads: number;
  /**
   * Set (true) when every blob has arrived and the runtime is applying the image's layers (a
   * containerd pull's lease holds snapshots, until the pull returns); absent otherwise.
   */
  unpacking?: boolean;
}

/** Options for {@linkcode ProgressSource.sample}. */
export interface SampleOptions {
  /** Cancels the sample. */
  signal?: AbortSignal;
}

/** Tells how far the pulls of some images have got. */
export interface ProgressSource {
  /**
   * One sample for each of `images` (normalised references such as
   * `127.0.0.1:5000/team/app:v1`, `docker.io/library/debian:12` or `…@sha256:<hex>`). Images with
   * nothing to show yet (or invalid references) are absent from the map.
   */
  sample(images: string[], options?: SampleOptions): Promise<Map<string, ImageProgress>>;
}
