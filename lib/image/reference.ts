/**
 * Container image references (`debian`, `quay.io/org/app:1.2`, `host:5000/a@sha256:…`), parsed
 * and normalised the way Kubernetes and containerd do with `reference.ParseNormalizedNamed`
 * followed by `reference.TagNameOnly`.
 *
 * @module
 */

/** A parsed, normalised container image reference. */
export interface ImageReference {
  /** Registry host with optional port, `docker.io` for Docker Hub (e.g. `quay.io`, `localhost:5000`). */
  registry: string;
  /** Repository path within the registry (e.g. `library/debian`, `strimzi/kafka`). */
  repository: string;
  /** Tag; `latest` when neither tag nor digest was written, undefined when only a digest was. */
  tag?: string;
  /** Digest as `algorithm:hex` (e.g. `sha256:…`), when one was written. */
  digest?: string;
  /** The canonical form `registry/repository[:tag][@digest]`, e.g. `docker.io/library/debian:latest`. */
  normalized: string;
  /** The text as given, before trimming. */
  original: string;
}

/** Thrown by {@linkcode parseImageReference} when the text is not a valid image reference. */
export class InvalidImageReferenceError extends Error {
  /** The offending reference text, as given. */
  readonly reference: string;

  /**
   * Creates the error for `reference`, explaining `problem`.
   *
   * @param reference The offending reference text.
   * @param problem What is wrong with it, as a sentence fragment.
   */
  constructor(reference: string, problem: string) {
    super(
      `${JSON.stringify(reference)} is not a valid image reference: ${problem}; ` +
        `write it like "debian:12" or "registry.example.com/team/app@sha256:<digest>".`,
    );
    this.name = "InvalidImageReferenceError";
    this.reference = reference;
  }
}

const DOCKER_HUB = "docker.io";
const LEGACY_DOCKER_HUB = "index.docker.io";
const OFFICIAL_PREFIX = "library/";
const DEFAULT_TAG = "latest";
const NAME_MAX_LENGTH = 255;

const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const REGISTRY = new RegExp(
  `^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`,
);
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$/;
const TAG = /^\w[\w.-]{0,127}$/;
const DIGEST = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/;
const IMAGE_ID = /^[a-f0-9]{64}$/;

/** Hex lengths of the digest algorithms registries and containerd accept. */
const DIGEST_HEX_LENGTHS: Readonly<Record<string, number>> = {
  sha256: 64,
  sha384: 96,
  sha512: 128,
};

/**
 * Parses a container image reference and normalises it to its fully qualified form.
 *
 * Follows the Docker/distribution reference grammar and Docker Hub normalisation: the first
 * path component is a registry host only if it contains `.` or `:` or is `localhost`; otherwise
 * the image is on `docker.io`, and single-component names get the `library/` prefix.
 * `index.docker.io` is treated as `docker.io`. The tag `latest` is added when neither a tag nor
 * a digest is given. Surrounding whitespace is ignored.
 *
 * @example Usage
 * ```ts
 * import { parseImageReference } from "./reference.ts";
 *
 * const ref = parseImageReference("debian");
 * ref.normalized; // "docker.io/library/debian:latest"
 * ```
 *
 * @param text The reference as written by the user.
 * @returns The parsed reference.
 * @throws {InvalidImageReferenceError} When the text does not follow the reference grammar.
 */
export function parseImageReference(text: string): ImageReference {
  const trimmed = text.trim();
  const fail = (problem: string): never => {
    throw new InvalidImageReferenceError(text, problem);
  };
  if (trimmed === "") fail("it is empty");
  if (/\s/.test(trimmed)) fail("it contains whitespace");
  if (IMAGE_ID.test(trimmed)) {
    fail("a bare 64-character hex string is an image ID, not a reference");
  }
  const parts = splitReference(trimmed);
  validateParts(parts, fail);
  const { registry, repository, tag, digest } = parts;
  const fullName = `${registry}/${repository}`;
  const effectiveTag = tag ?? (digest === undefined ? DEFAULT_TAG : undefined);
  const normalized = fullName + (effectiveTag === undefined ? "" : `:${effectiveTag}`) +
    (digest === undefined ? "" : `@${digest}`);
  const ref: ImageReference = { registry, repository, normalized, original: text };
  if (effectiveTag !== undefined) ref.tag = effectiveTag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

/** A reference cut into its parts, Docker Hub's defaults applied, nothing validated yet. */
interface ReferenceParts {
  registry: string;
  repository: string;
  tag?: string;
  digest?: string;
}

/**
 * Cuts `name[:tag][@digest]` into its parts. The first path component is a registry when it
 * looks like a host (has a `.` or `:`, or is `localhost`); otherwise the registry is Docker Hub,
 * whose one-component names live under `library/`.
 */
function splitReference(trimmed: string): ReferenceParts {
  const at = trimmed.indexOf("@");
  const name = at === -1 ? trimmed : trimmed.slice(0, at);
  const digest = at === -1 ? undefined : trimmed.slice(at + 1);
  const slash = name.indexOf("/");
  const first = slash === -1 ? "" : name.slice(0, slash);
  let registry = DOCKER_HUB;
  let remainder = name;
  if (first.includes(".") || first.includes(":") || first === "localhost") {
    registry = first === LEGACY_DOCKER_HUB ? DOCKER_HUB : first;
    remainder = name.slice(slash + 1);
  }
  if (registry === DOCKER_HUB && !remainder.includes("/")) remainder = OFFICIAL_PREFIX + remainder;
  const colon = remainder.indexOf(":");
  return {
    registry,
    repository: colon === -1 ? remainder : remainder.slice(0, colon),
    tag: colon === -1 ? undefined : remainder.slice(colon + 1),
    digest,
  };
}

/** Holds each part to the reference grammar; `fail` throws with the first problem. */
function validateParts(parts: ReferenceParts, fail: (problem: string) => never): void {
  const { registry, repository, tag, digest } = parts;
  if (repository.toLowerCase() !== repository) fail("repository names must be lowercase");
  if (!REGISTRY.test(registry)) {
    fail(`the registry host ${JSON.stringify(registry)} is not a valid host name or host:port`);
  }
  for (const component of repository.split("/")) {
    if (!PATH_COMPONENT.test(component)) {
      fail(
        component === ""
          ? "the repository path has an empty component"
          : `the repository path component ${JSON.stringify(component)} must be lowercase ` +
            `letters and digits separated by ".", "_", "__" or "-"`,
      );
    }
  }
  if (tag !== undefined && !TAG.test(tag)) {
    fail(
      `the tag ${JSON.stringify(tag)} must be 1 to 128 letters, digits, "_", "." or "-" ` +
        `and must not start with "." or "-"`,
    );
  }
  if (digest !== undefined) validateDigest(digest, fail);
  const fullName = `${registry}/${repository}`;
  if (fullName.length > NAME_MAX_LENGTH) {
    fail(`the name ${fullName} is ${fullName.length} characters long, over the limit of 255`);
  }
}

function validateDigest(digest: string, fail: (problem: string) => never): void {
  if (!DIGEST.test(digest)) {
    fail(
      `the digest ${JSON.stringify(digest)} must look like "sha256:" followed by 64 lowercase ` +
        `hex characters`,
    );
  }
  const [algorithm, hex] = digest.split(":");
  const length = DIGEST_HEX_LENGTHS[algorithm];
  if (length === undefined) {
    fail(
      `the digest algorithm ${JSON.stringify(algorithm)} is not supported ` +
        `(use ${Object.keys(DIGEST_HEX_LENGTHS).join(", ")})`,
    );
  }
  if (hex.length !== length || !/^[a-f0-9]+$/.test(hex)) {
    fail(`a ${algorithm} digest must be followed by ${length} lowercase hex characters`);
  }
}

/**
 * Tells whether a reference names a fixed image: it has a digest, or a tag other than `latest`.
 *
 * Kubernetes defaults `imagePullPolicy` to `IfNotPresent` for such references and to `Always`
 * for `latest` or untagged ones.
 *
 * @param ref A reference from {@linkcode parseImageReference}.
 * @returns `true` when the reference is pinned.
 */
export function isPinned(ref: ImageReference): boolean {
  return ref.digest !== undefined || (ref.tag !== undefined && ref.tag !== DEFAULT_TAG);
}
