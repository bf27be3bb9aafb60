/**
 * What the wave coordinator shows: per image how many nodes have it, pull it and wait for it,
 * and per registry its current bound. Served in `/summary` and drawn in the HTML report.
 *
 * @module
 */

/** One image's wave. */
export interface ImageWaves {
  /** The normalised image reference. */
  image: string;
  /** Its registry host, e.g. `docker.io`. */
  registry: string;
  /** Nodes that have it (pulled or found present). */
  have: number;
  /** Nodes admitted to pull it whose lease is current. */
  pulling: number;
  /** Nodes told to wait for it and heard from within a lease. */
  waiting: number;
}

/** One registry's bound of nodes pulling at once. */
export interface RegistryWaves {
  /** The registry host. */
  registry: string;
  /** Nodes allowed to pull from it at once; null while no 429 has cut it. */
  bound: number | null;
  /** Nodes pulling from it now. */
  nodesPulling: number;
  /** How many pulls from it failed with a rate limit. */
  rateLimited: number;
}

/** The coordinator's whole picture. */
export interface WavesSnapshot {
  /** Nodes in an image's first wave. */
  firstWave: number;
  /** Nodes that may pull an image per node that has it. */
  fanout: number;
  /** The cluster-wide bound on nodes pulling; 0 for none. */
  maxNodesPulling: number;
  /** Nodes heard from since the coordinator started. */
  nodes: number;
  /** Nodes holding at least one lease. */
  nodesPulling: number;
  /** Admission decisions made since the start. */
  decisions: number;
  /** Per image, by name. */
  images: ImageWaves[];
  /** Per registry, by name. */
  registries: RegistryWaves[];
}

/**
 * The registry host of a normalised image reference: everything before the first `/`.
 *
 * @example
 * ```ts
 * import { registryOf } from "./snapshot.ts";
 * registryOf("docker.io/library/debian:12"); // "docker.io"
 * ```
 */
export function registryOf(image: string): string {
  const slash = image.indexOf("/");
  return slash === -1 ? image : image.slice(0, slash);
}
