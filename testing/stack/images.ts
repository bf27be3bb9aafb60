/**
 * Builds small synthetic OCI images in memory and pushes them to a registry over its HTTP API
 * (no docker, skopeo or umoci needed).
 *
 * @module
 */
import { gzipSync } from "node:zlib";
import { basicAuthorization, type RegistryCredentials } from "./registry.ts";

/** Media type of the manifests we push. */
export const OCI_MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json";
const LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip";

/** Where to push: the parts of a {@linkcode Registry} that {@linkcode pushImage} needs. */
export interface PushTarget {
  /** Base URL, e.g. `http://127.0.0.1:5000`. */
  url: string;
  /** Credentials for basic auth, if the registry requires them. */
  auth?: RegistryCredentials;
}

/** Options for {@linkcode pushImage}. */
export interface PushImageOptions {
  /** Repository name, e.g. `test/app`. */
  repository: string;
  /** Tag. @default {"latest"} */
  tag?: string;
  /** Number of layers. @default {1} */
  layers?: number;
  /** Uncompressed size of the file(s) in each layer, in bytes. @default {65536} */
  layerBytes?: number;
  /**
   * How many files each layer's bytes are split into: a layer of many files takes containerd
   * longer to apply (unpack) than one file of the same size.
   *
   * @default {1}
   */
  filesPerLayer?: number;
  /**
   * Seed of the layer contents: the same seed, layer count and size give the same blobs (and
   * digest); without one every call makes new, unique content.
   *
   * @default {a random UUID}
   */
  seed?: string;
  /**
   * `architecture` of the image config. Pulls by tag of a plain manifest check it against the
   * node's platform, so the default is the machine's own.
   *
   * @default {"amd64" on x86_64, "arm64" on aarch64}
   */
  architecture?: string;
}

/** An image that was pushed; see {@linkcode pushImage}. */
export interface PushedImage {
  /** Repository name. */
  repository: string;
  /** Tag. */
  tag: string;
  /** Digest of the manifest (`sha256:…`). */
  digest: string;
  /** The compressed layer blobs, in order. */
  layers: { digest: string; size: number }[];
  /** Digest of the image config blob. */
  configDigest: string;
  /** Sum of the sizes of the compressed layers, the config and the manifest. */
  sizeBytes: number;
  /** Returns `host/repository:tag`, e.g. with the registry's or the fault proxy's host. */
  reference(host: string): string;
}

/** Thrown when the registry rejects an upload; says which request and what it answered. */
export class ImagePushError extends Error {
  /** Builds the error for `method url` having answered `status` with `body`. */
  constructor(method: string, url: string, status: number, body: string) {
    super(
      `${method} ${url} answered ${status}: ${body.slice(0, 500)}. Check the registry URL, ` +
        `the credentials and the registry log.`,
    );
    this.name = "ImagePushError";
  }
}

/**
 * Creates an OCI image of `layers` gzip'd tar layers, each holding one file of incompressible
 * pseudo-random bytes, and pushes its blobs and manifest to `target` under `repository:tag`.
 *
 * @example
 * ```ts
 * import { pushImage } from "./images.ts";
 * import { startFaultProxy } from "./fault_proxy.ts";
 * import { startRegistry } from "./registry.ts";
 *
 * await using registry = await startRegistry();
 * await using proxy = await startFaultProxy(registry.url);
 * const image = await pushImage(registry, { repository: "test/app", layerBytes: 1 << 20 });
 * const ref = image.reference(proxy.host); // "127.0.0.1:40123/test/app:latest"
 * ```
 */
export async function pushImage(
  target: PushTarget,
  options: PushImageOptions,
): Promise<PushedImage> {
  const { repository } = options;
  const tag = options.tag ?? "latest";
  const seed = options.seed ?? crypto.randomUUID();
  const layerCount = options.layers ?? 1;
  const layerBytes = options.layerBytes ?? 64 * 1024;
  const filesPerLayer = Math.max(1, Math.floor(options.filesPerLayer ?? 1));
  const base = target.url.replace(/\/+$/, "");
  const headers: Record<string, string> = {};
  if (target.auth) headers.authorization = basicAuthorization(target.auth);

  const layers: { digest: string; size: number }[] = [];
  const diffIds: string[] = [];
  for (let i = 0; i < layerCount; i++) {
    const tar = tarFiles(`layer-${i}`, randomBytes(`${seed}/${i}`, layerBytes), filesPerLayer);
    diffIds.push(await sha256(tar));
    // Stored (level 0) deflate: the content is random anyway, and it is ~20x faster than level 6.
    const gz: Uint8Array<ArrayBuffer> = new Uint8Array(gzipSync(tar, { level: 0 }));
    const digest = await sha256(gz);
    await uploadBlob(base, repository, digest, gz, headers);
    layers.push({ digest, size: gz.byteLength });
  }
  const config = new TextEncoder().encode(JSON.stringify({
    architecture: options.architecture ?? hostArchitecture(),
    os: "linux",
    config: {},
    rootfs: { type: "layers", diff_ids: diffIds },
  }));
  const configDigest = await sha256(config);
  await uploadBlob(base, repository, configDigest, config, headers);
  const manifest = new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    config: { mediaType: CONFIG_MEDIA_TYPE, digest: configDigest, size: config.byteLength },
    layers: layers.map((l) => ({ mediaType: LAYER_MEDIA_TYPE, digest: l.digest, size: l.size })),
  }));
  const digest = await sha256(manifest);
  const manifestUrl = `${base}/v2/${repository}/manifests/${tag}`;
  const response = await fetch(manifestUrl, {
    method: "PUT",
    headers: { ...headers, "content-type": OCI_MANIFEST_MEDIA_TYPE },
    body: manifest,
  });
  const body = await response.text();
  if (response.status !== 201) throw new ImagePushError("PUT", manifestUrl, response.status, body);

  return {
    repository,
    tag,
    digest,
    layers,
    configDigest,
    sizeBytes: layers.reduce((sum, l) => sum + l.size, 0) + config.byteLength +
      manifest.byteLength,
    reference: (host: string) => `${host}/${repository}:${tag}`,
  };
}

async function uploadBlob(
  base: string,
  repository: string,
  digest: string,
  data: Uint8Array<ArrayBuffer>,
  headers: Record<string, string>,
): Promise<void> {
  const blobUrl = `${base}/v2/${repository}/blobs/${digest}`;
  const head = await fetch(blobUrl, { method: "HEAD", headers });
  await head.body?.cancel();
  if (head.status === 200) return;

  const startUrl = `${base}/v2/${repository}/blobs/uploads/`;
  const start = await fetch(startUrl, { method: "POST", headers });
  const startBody = await start.text();
  const location = start.headers.get("location");
  if (start.status !== 202 || !location) {
    throw new ImagePushError("POST", startUrl, start.status, startBody);
  }
  const putUrl = new URL(location, base);
  putUrl.searchParams.set("digest", digest);
  const put = await fetch(putUrl, {
    method: "PUT",
    headers: { ...headers, "content-type": "application/octet-stream" },
    body: data,
  });
  const putBody = await put.text();
  if (put.status !== 201) throw new ImagePushError("PUT", putUrl.href, put.status, putBody);
}

/** Deterministic, incompressible bytes from `seed` (xorshift32; fast enough for 100s of MB). */
function randomBytes(seed: string, size: number): Uint8Array {
  const bytes = new Uint8Array(Math.ceil(size / 4) * 4);
  const words = new Uint32Array(bytes.buffer);
  let x = 2166136261;
  for (let i = 0; i < seed.length; i++) x = Math.imul(x ^ seed.charCodeAt(i), 16777619) >>> 0;
  if (x === 0) x = 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x;
  }
  return bytes.subarray(0, size);
}

/**
 * A POSIX ustar archive of `content` split into `files` regular files: `<name>.bin` when there is
 * one, `<name>/<n>.bin` (after their directory's entry) when there are more.
 */
function tarFiles(name: string, content: Uint8Array, files: number): Uint8Array {
  const size = Math.ceil(content.byteLength / files);
  const parts = files === 1
    ? [{ path: `${name}.bin`, data: content }]
    : Array.from({ length: files }, (_, i) => ({
      path: `${name}/${i}.bin`,
      data: content.subarray(i * size, Math.min((i + 1) * size, content.byteLength)),
    }));
  const directories = files === 1 ? 0 : 1;
  const total = (directories + parts.length) * 512 +
    parts.reduce((sum, p) => sum + Math.ceil(p.data.byteLength / 512) * 512, 0) + 1024;
  const tar = new Uint8Array(total);
  let offset = 0;
  if (directories > 0) {
    tarHeader(tar.subarray(0, 512), `${name}/`, 0, "5", 0o755);
    offset = 512;
  }
  for (const part of parts) {
    tarHeader(tar.subarray(offset, offset + 512), part.path, part.data.byteLength, "0", 0o644);
    tar.set(part.data, offset + 512);
    offset += 512 + Math.ceil(part.data.byteLength / 512) * 512;
  }
  return tar;
}

/** Writes one ustar header (`type` "0" a file, "5" a directory) into the 512 bytes of `header`. */
function tarHeader(
  header: Uint8Array,
  name: string,
  size: number,
  type: string,
  mode: number,
): void {
  const put = (offset: number, text: string) => header.set(new TextEncoder().encode(text), offset);
  const octal = (value: number, width: number) => value.toString(8).padStart(width - 1, "0");
  put(0, name);
  put(100, octal(mode, 8));
  put(108, octal(0, 8));
  put(116, octal(0, 8));
  put(124, octal(size, 12));
  put(136, octal(0, 12));
  put(148, "        ");
  put(156, type);
  put(257, "ustar\u000000");
  let checksum = 0;
  for (const byte of header) checksum += byte;
  put(148, `${octal(checksum, 7)}\u0000 `);
}

async function sha256(data: Uint8Array): Promise<string> {
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", data as BufferSource));
  return `sha256:${Array.from(hash, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

function hostArchitecture(): string {
  return Deno.build.arch === "aarch64" ? "arm64" : "amd64";
}
