/**
 * The bounds on what nodes may make the coordinator hold: names per request, a name's length,
 * images and nodes known at once. Past a bound the request is refused whole, with a sentence
 * that names the bound and what to do, and nothing of it is applied.
 *
 * @module
 */

/** The bounds, each with its default. */
export interface WavesLimits {
  /**
   * Names in one list of one request (`want`, `progressed`, `pulled`, `present`, `failed`,
   * `released`).
   * @default {1_000}
   */
  maxNamesPerRequest: number;
  /**
   * Characters in an image name (a reference is at most a few hundred).
   * @default {1_024}
   */
  maxNameLength: number;
  /**
   * Characters in a node name (a Kubernetes node name is at most 253).
   * @default {253}
   */
  maxNodeNameLength: number;
  /**
   * Images known at once; an image no node wants, pulls or has is forgotten.
   * @default {10_000}
   */
  maxImages: number;
  /**
   * Nodes known at once; a node silent for a lease that holds nothing is forgotten.
   * @default {20_000}
   */
  maxNodes: number;
}

/** The defaults of {@linkcode WavesLimits}. */
export const DEFAULT_WAVES_LIMITS: Readonly<WavesLimits> = Object.freeze({
  maxNamesPerRequest: 1_000,
  maxNameLength: 1_024,
  maxNodeNameLength: 253,
  maxImages: 10_000,
  maxNodes: 20_000,
});

/**
 * A request past a bound: `"invalid"` when the request itself is (too many names, too long a
 * name), `"exhausted"` when the coordinator holds as much as it may (images, nodes).
 */
export class WavesLimitError extends Error {
  /** Creates the error with the sentence to send back. */
  constructor(message: string, readonly kind: "invalid" | "exhausted") {
    super(message);
    this.name = "WavesLimitError";
  }
}

/** The lists of names one request carries, as the coordinator's calls see them. */
export interface RequestNames {
  /** The node's name. */
  node: string;
  /** Each list by its field name. */
  lists: Record<string, readonly string[]>;
}

/** Throws a {@linkcode WavesLimitError} when a list is too long or a name too long or empty. */
export function checkRequestNames(request: RequestNames, limits: WavesLimits): void {
  if (request.node.length > limits.maxNodeNameLength) {
    throw new WavesLimitError(
      `AdmitRequest.node is ${request.node.length} characters long; a node name has at most ` +
        `${limits.maxNodeNameLength}`,
      "invalid",
    );
  }
  for (const [field, names] of Object.entries(request.lists)) {
    if (names.length > limits.maxNamesPerRequest) {
      throw new WavesLimitError(
        `AdmitRequest.${field} lists ${names.length} images; send at most ` +
          `${limits.maxNamesPerRequest} per request (fetch never sends more than its image list)`,
        "invalid",
      );
    }
    for (const name of names) {
      if (name.length === 0 || name.length > limits.maxNameLength) {
        throw new WavesLimitError(
          `AdmitRequest.${field} has an image name of ${name.length} characters; an image ` +
            `reference has 1 to ${limits.maxNameLength}`,
          "invalid",
        );
      }
    }
  }
}
