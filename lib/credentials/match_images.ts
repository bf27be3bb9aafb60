/**
 * The kubelet's `matchImages` rule: which images a credential provider plugin is run for.
 *
 * @module
 */
import { globMatches } from "../image/docker_config.ts";

/**
 * Whether the registry glob `glob` matches `image` (a repository such as
 * `123.dkr.ecr.eu-west-1.amazonaws.com/team/app`), as the kubelet's `URLsMatchStr` decides: both
 * read as schemeless URLs; the ports must be equal (none equals none); the hosts must have as many
 * dot-separated labels, each matching its glob label (`*.gcr.io` matches `eu.gcr.io`, not
 * `gcr.io` or `a.b.gcr.io`); and the image's path must start with the glob's path.
 *
 * @example Usage
 * ```ts
 * import { imageMatches } from "./match_images.ts";
 *
 * imageMatches("*.dkr.ecr.*.amazonaws.com", "1.dkr.ecr.eu-west-1.amazonaws.com/app"); // true
 * imageMatches("*.gcr.io", "gcr.io/project/app"); // false
 * ```
 *
 * @param glob One `matchImages` entry.
 * @param image The image repository, with or without tag or digest.
 * @returns Whether the plugin is run for the image.
 */
export function imageMatches(glob: string, image: string): boolean {
  const pattern = splitSchemeless(glob);
  const target = splitSchemeless(image);
  return pattern.port === target.port &&
    pattern.labels.length === target.labels.length &&
    target.path.startsWith(pattern.path) &&
    pattern.labels.every((label, i) => globMatches(label, target.labels[i]));
}

/**
 * The registry part of an image repository, as the kubelet's `Registry` cache key takes it: the
 * text before the first `/` (host and port).
 *
 * @param image The image repository, e.g. `registry.example.com:5000/team/app`.
 * @returns The registry, e.g. `registry.example.com:5000`.
 */
export function registryOf(image: string): string {
  return image.split("/")[0];
}

/** Splits `host[:port][/path]` as Go's `url.Parse("https://" + text)` and `SplitHostPort` would. */
function splitSchemeless(text: string): { labels: string[]; port: string; path: string } {
  const end = text.search(/[/?#]/);
  const authority = end === -1 ? text : text.slice(0, end);
  const rest = end === -1 ? "" : text.slice(end);
  const path = rest.startsWith("/") ? rest.replace(/[?#].*$/s, "") : "";
  const hostPort = authority.slice(authority.lastIndexOf("@") + 1);
  let host = hostPort;
  let port = "";
  const bracket = hostPort.match(/^\[([^\]]*)\]:(.*)$/);
  if (bracket) {
    [host, port] = [bracket[1], bracket[2]];
  } else if (hostPort.indexOf(":") !== -1 && hostPort.indexOf(":") === hostPort.lastIndexOf(":")) {
    [host, port] = hostPort.split(":");
  }
  return { labels: host.split("."), port, path };
}
