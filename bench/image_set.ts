/**
 * The set of images the one-node and cluster benchmarks pull: `count` images whose sizes are
 * spread evenly from `minMiB` to `maxMiB`, each in 3 layers of unique content, under the pinned
 * tag `v1` (so a second `fetch` finds them present and pulls nothing).
 *
 * @module
 */
import { type PushedImage, pushImage, type PushTarget } from "../testing/stack/stack.ts";

/** Options for {@linkcode pushImageSet}. */
export interface PushImageSetOptions {
  /** How many images. @default {12} */
  count?: number;
  /** Size of the smallest image, in MiB. @default {2} */
  minMiB?: number;
  /** Size of the largest image, in MiB. @default {12} */
  maxMiB?: number;
  /** Repository prefix; image `i` is `<prefix>-<i>:v1`. @default {"bench/app"} */
  prefix?: string;
}

/** Builds and pushes the image set to `registry`; returns the images, smallest first. */
export async function pushImageSet(
  registry: PushTarget,
  options: PushImageSetOptions = {},
): Promise<PushedImage[]> {
  const count = options.count ?? 12;
  const minMiB = options.minMiB ?? 2;
  const maxMiB = options.maxMiB ?? 12;
  const prefix = options.prefix ?? "bench/app";
  const images: PushedImage[] = [];
  for (let i = 0; i < count; i++) {
    const mib = count === 1 ? minMiB : minMiB + ((maxMiB - minMiB) * i) / (count - 1);
    images.push(
      await pushImage(registry, {
        repository: `${prefix}-${i}`,
        tag: "v1",
        layers: 3,
        layerBytes: Math.round((mib * 2 ** 20) / 3),
      }),
    );
  }
  return images;
}
