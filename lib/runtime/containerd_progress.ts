/**
 * How many bytes have arrived for images being pulled, read from containerd's content service on
 * the CRI socket: committed blobs plus the offsets of active ingests.
 *
 * A pull is attributed to an image through the manifests that containerd commits before it
 * fetches their blobs: they carry the label
 * `containerd.io/distribution.source.<registry host without port>=<repository>[,<repository>…]`
 * (see {@linkcode distributionSourceLabelKey}), and their JSON lists the config and layer blobs
 * with their sizes. Blobs that are committed count their full size; blobs being written count
 * the ingest's `offset` (ingest refs end with the blob's digest, e.g. `layer-sha256:<hex>`).
 *
 * What containerd 1.6 shows, measured (see `tests/pull_progress_e2e_test.ts`):
 * - an ingest's `offset` grows in steps of 1 MiB (containerd copies through a 1 MiB buffer and
 *   writes only full buffers), so a blob receiving bytes slowly can look still for
 *   1 MiB / (its rate); a blob smaller than 1 MiB shows 0 until it is committed;
 * - when a CRI pull is cancelled, its ingests disappear at once and the blobs it had already
 *   committed are garbage-collected shortly after, unless another lease holds them: given a
 *   {@linkcode BlobKeeper} (the run's lease), the source hands it every committed blob it shows,
 *   the ingests of those being downloaded and the snapshots their pull committed, so a retry
 *   downloads (and unpacks) only what is missing, resuming a half-downloaded blob where it
 *   stopped (containerd asks the registry for the rest with a range request);
 * - once every blob has arrived, the pull's lease (leases service) holds a snapshot (the
 *   `extract-` one a layer is applied into, or those committed) until the pull returns: the sample
 *   says `unpacking` (see `containerd_leases.ts`).
 *
 * Ambiguity: for an image named by tag, the digest of its manifest is not known while it is
 * pulled, so every manifest of the same repository that is still missing blobs is attributed to
 * it. Two tags of one repository pulled at once therefore both see the bytes of both. Images
 * named by digest are exact.
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import contentProto from "../../proto/containerd_content.proto" with { type: "text" };
import { type ImageReference, parseImageReference } from "../image/reference.ts";
import { loadProto, serviceConstructor } from "../core/proto.ts";
import type { ImageProgress, ProgressSource, SampleOptions } from "../pull/progress_source.ts";
import { ContainerdServiceError, containerdUnary, namespaceMetadata } from "./_containerd_call.ts";
import {
  committedSnapshots,
  ContainerdLeases,
  isUnpacking,
  type LeaseHoldings,
  type LeaseResource,
} from "./containerd_leases.ts";
import { socketTarget } from "./cri_client.ts";

/** Options for {@linkcode ContainerdProgressSource}. */
export interface ContainerdProgressSourceOptions {
  /** The containerd namespace the pulls happen in. @default {"k8s.io"} */
  namespace?: string;
  /** Deadline of one whole sample, in milliseconds. @default {2000} */
  timeoutMs?: number;
  /** Told the committed blobs and snapshots of every image a sample shows, to keep them. */
  keeper?: BlobKeeper;
}

/** Keeps committed blobs from containerd's garbage collection (see `containerd_run_lease.ts`). */
export interface BlobKeeper {
  /** The ID of the lease that holds them, left out when looking at pulls' leases. */
  readonly id: string;
  /** Holds `resources` (committed blobs and snapshots) until the keeper is released. */
  keep(resources: Iterable<LeaseResource>): void;
}

/** Options for {@linkcode probeProgress}. */
export interface ProbeProgressOptions extends ContainerdProgressSourceOptions {
  /** Cancels the probe. */
  signal?: AbortSignal;
}

/** The answer of {@linkcode probeProgress}. */
export type ProgressProbe =
  | { available: true; source: ContainerdProgressSource }
  | { available: false; reason: string };

/** A call to containerd's content service failed; `code` is the gRPC status code. */
export class ContentServiceError extends ContainerdServiceError {
  /** Wraps a failed call of `method` on `socket`. */
  constructor(method: string, socket: string, error: { code: number; details?: string }) {
    super(
      "content",
      method,
      socket,
      error,
      ". Pull progress is unknown for this sample; check that the socket is containerd's and " +
        "that it is healthy.",
    );
    this.name = "ContentServiceError";
  }
}

/** One active ingest: a blob being written to the content store. */
export interface IngestStatus {
  /** The ingest's name, e.g. `layer-sha256:<hex>`. */
  ref: string;
  /** Bytes written so far (containerd 1.6: a multiple of 1 MiB until the blob is committed). */
  offset: number;
  /** Expected size in bytes; 0 when unknown. */
  total: number;
}

/** A blob an image needs, as its manifest describes it. */
export interface BlobDescriptor {
  /** `sha256:<hex>`. */
  digest: string;
  /** Size in bytes. */
  size: number;
}

/** What a manifest or index lists, from {@linkcode parseManifest}. */
export type ParsedManifest =
  | { kind: "manifest"; blobs: BlobDescriptor[] }
  | { kind: "index"; manifests: string[] }
  | { kind: "unknown" };

/** The state of the content store that {@linkcode progressOf} needs. */
export interface ContentState {
  /** Committed blobs: digest to size. */
  committed: ReadonlyMap<string, number>;
  /** Active ingests: digest to the bytes written so far. */
  ingests: ReadonlyMap<string, number>;
}

const LABEL_DISTRIBUTION_SOURCE = "containerd.io/distribution.source";
const LABEL_FIRST_LAYER = "containerd.io/gc.ref.content.l.0";
const MAX_MANIFEST_BYTES = 4 << 20;
const CACHE_LIMIT = 1000;
/** At most this many leases, the newest, are read for snapshots per sample. */
export const MAX_LEASES_READ = 64;

/**
 * Returns the key of the label containerd puts on blobs pulled from `registry` (`host[:port]`
 * as in the reference): the host without its port, as containerd's `url.Hostname()` gives it.
 *
 * @example
 * ```ts
 * distributionSourceLabelKey("127.0.0.1:5000"); // "containerd.io/distribution.source.127.0.0.1"
 * ```
 */
export function distributionSourceLabelKey(registry: string): string {
  let host = registry;
  if (host.startsWith("[")) {
    const end = host.indexOf("]");
    host = end === -1 ? host.slice(1) : host.slice(1, end);
  } else {
    const colon = host.lastIndexOf(":");
    if (colon !== -1) host = host.slice(0, colon);
  }
  return `${LABEL_DISTRIBUTION_SOURCE}.${host}`;
}

/**
 * Returns the containerd filter that lists the image manifests pulled from `repository` on
 * `registry`: its distribution-source label names the repository (the value is a sorted,
 * comma-separated list of repositories) and it has a first-layer reference label.
 */
export function repositoryManifestFilter(registry: string, repository: string): string {
  const escaped = repository.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return `labels.${quote(distributionSourceLabelKey(registry))}~=` +
    `${quote(`(^|,)${escaped}(,|$)`)},labels.${quote(LABEL_FIRST_LAYER)}`;
}

/** Returns the digest an ingest ref ends with (`layer-sha256:<hex>` gives `sha256:<hex>`). */
export function ingestDigest(ref: string): string | undefined {
  return /(sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128})$/.exec(ref)?.[1];
}

/**
 * Reads an OCI or Docker manifest (config and layer blobs) or index (child manifests) from its
 * JSON bytes; anything else is `unknown`.
 */
export function parseManifest(bytes: Uint8Array): ParsedManifest {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return { kind: "unknown" };
  }
  if (typeof json !== "object" || json === null) return { kind: "unknown" };
  const { config, layers, manifests } = json as Record<string, unknown>;
  if (Array.isArray(manifests)) {
    return { kind: "index", manifests: manifests.filter(isDescriptor).map((m) => m.digest) };
  }
  if (Array.isArray(layers)) {
    const blobs = [...(isDescriptor(config) ? [config] : []), ...layers.filter(isDescriptor)];
    return { kind: "manifest", blobs: blobs.map(({ digest, size }) => ({ digest, size })) };
  }
  return { kind: "unknown" };
}

/**
 * Sums what has arrived of the blobs of `manifests` (each blob once, also when several manifests
 * share it): committed blobs count their size, active ingests their offset.
 */
export function progressOf(manifests: BlobDescriptor[][], state: ContentState): ImageProgress {
  const blobs = new Map<string, number>();
  for (const manifest of manifests) {
    for (const blob of manifest) blobs.set(blob.digest, blob.size);
  }
  let receivedBytes = 0;
  let totalBytes = 0;
  let activeDownloads = 0;
  for (const [digest, size] of blobs) {
    totalBytes += size;
    const committed = state.committed.get(digest);
    const offset = state.ingests.get(digest);
    if (committed !== undefined) {
      receivedBytes += size;
    } else if (offset !== undefined) {
      receivedBytes += Math.min(offset, size);
      activeDownloads++;
    }
  }
  return { receivedBytes, totalBytes, activeDownloads };
}

/** A committed manifest as {@linkcode attributeManifests} sees it. */
export interface ListedManifest {
  /** The manifest's digest. */
  digest: string;
  /** Its labels in the content store. */
  labels: Readonly<Record<string, string>>;
  /** The config and layer blobs its JSON lists. */
  blobs: BlobDescriptor[];
}

/**
 * Picks the manifests whose download belongs to the tagged image `ref`, in the order given: the
 * image manifests of its registry and repository (by distribution-source label) that still miss
 * a blob, plus those in `previous` (attributed by an earlier sample of the same pull, so that a
 * finished download stays visible until the pull returns).
 *
 * A tag does not tell which manifest it points to during a pull, so every incomplete manifest of
 * the repository is taken; two tags of one repository pulled at once share them. Complete
 * manifests not attributed before belong to images already on the node.
 */
export function attributeManifests(
  ref: ImageReference,
  listed: readonly ListedManifest[],
  previous: ReadonlySet<string>,
  committed: ReadonlyMap<string, number>,
): string[] {
  const key = distributionSourceLabelKey(ref.registry);
  return listed
    .filter((manifest) =>
      manifest.blobs.length > 0 && labelListsRepository(manifest.labels[key], ref.repository) &&
      (previous.has(manifest.digest) || manifest.blobs.some((blob) => !committed.has(blob.digest)))
    )
    .map((manifest) => manifest.digest);
}

/**
 * Tells whether the socket serves containerd's content service, with one cheap call. On CRI-O,
 * or a socket that is missing or serves something else, answers `available: false` with a
 * reason for one log line.
 *
 * @example
 * ```ts
 * const probe = await probeProgress("/run/containerd/containerd.sock");
 * if (!probe.available) console.log(`progress unavailable: ${probe.reason}`);
 * ```
 */
export async function probeProgress(
  socket: string,
  options: ProbeProgressOptions = {},
): Promise<ProgressProbe> {
  const source = new ContainerdProgressSource(socket, options);
  try {
    await source.listIngests(options.signal);
    return { available: true, source };
  } catch (error) {
    source.close();
    if (options.signal?.aborted) throw options.signal.reason;
    if (!(error instanceof ContentServiceError)) throw error;
    const reason = error.code === grpc.status.UNIMPLEMENTED
      ? `${socket} does not serve containerd's content service (CRI-O or not containerd)`
      : error.message;
    return { available: false, reason };
  }
}

type StreamMethod = (
  request: unknown,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
) => grpc.ClientReadableStream<unknown>;

/** The deadline and cancellation of one sample, shared by its calls. */
interface Call {
  signal?: AbortSignal;
  deadline: number;
}

/** An image being sampled: its name as given, and its parsed reference. */
type ImageEntry = [image: string, ref: ImageReference];

interface RawInfo {
  digest: string;
  size: number;
  created_at?: { seconds: number; nanos: number } | null;
  labels?: Record<string, string>;
}

const Content = serviceConstructor(
  loadProto(contentProto),
  "containerd.services.content.v1.Content",
);

/**
 * Progress from containerd's content service on the same socket as CRI. Keeps a small cache of
 * manifests (by digest) and, per image being sampled, the manifests attributed to it, so that a
 * manifest stays attributed after its last blob is committed.
 *
 * @example
 * ```ts
 * import { ContainerdProgressSource } from "./containerd_progress.ts";
 *
 * // How many bytes of debian:12 the node's containerd has received so far.
 * async function debianProgress(): Promise<number | undefined> {
 *   using progress = new ContainerdProgressSource("/run/containerd/containerd.sock");
 *   const samples = await progress.sample(["docker.io/library/debian:12"]);
 *   return samples.get("docker.io/library/debian:12")?.receivedBytes;
 * }
 * ```
 */
export class ContainerdProgressSource implements ProgressSource, Disposable {
  /** The socket path this source reads. */
  readonly socket: string;
  #client: grpc.Client;
  #namespace: string;
  #timeoutMs: number;
  #leases: ContainerdLeases;
  #keeper?: BlobKeeper;
  /** The ingest ref of each blob being downloaded at the last sample, by digest. */
  #ingestRefs = new Map<string, string>();
  #manifests = new Map<string, ParsedManifest>();
  /** Manifests seen with all their blobs committed, keyed `digest@created_at`. */
  #complete = new Set<string>();
  /**
   * Per tagged image: the manifests attributed to it in earlier samples, also when it was not
   * sampled for a while (between two attempts: a retry finds the manifest complete, its blobs
   * kept by the run's lease). Bounded: past {@linkcode CACHE_LIMIT} images the oldest is forgotten.
   */
  #attributed = new Map<string, Set<string>>();

  /** Creates a source; no connection is made until the first sample. */
  constructor(socket: string, options: ContainerdProgressSourceOptions = {}) {
    this.socket = socket;
    this.#namespace = options.namespace ?? "k8s.io";
    this.#timeoutMs = options.timeoutMs ?? 2000;
    this.#client = new Content(socketTarget(socket), grpc.credentials.createInsecure());
    this.#leases = new ContainerdLeases(socket, this.#namespace);
    this.#keeper = options.keeper;
  }

  /**
   * Samples the progress of `images`. Costs one `ListStatuses`, at most two `List` calls, an
   * `Info` per digest-pinned manifest not seen yet and a `Read` per manifest not seen yet, one
   * leases `List` and a `ListResources` per lease (at most {@linkcode MAX_LEASES_READ}): which
   * manifests pulls hold (a download faster than a sample ends with a complete manifest that is
   * still being pulled), whether an image is unpacking and which snapshots its pull committed. Hands the committed blobs and snapshots of
   * every image shown to the keeper, if there is one.
   *
   * @throws {ContentServiceError} When a call fails or the sample exceeds its deadline.
   * @throws {LeasesServiceError} When a leases call fails.
   */
  async sample(
    images: string[],
    options: SampleOptions = {},
  ): Promise<Map<string, ImageProgress>> {
    const call: Call = { signal: options.signal, deadline: Date.now() + this.#timeoutMs };
    const { tagged, pinned } = this.#parseImages(images);
    const [ingests, listed, pinnedManifests, holdings] = await Promise.all([
      this.#ingestOffsets(call),
      this.#repositoryManifests(tagged, call),
      Promise.all(
        pinned.map(([, ref]) => this.#pinnedManifests(ref.digest!, call.signal, call.deadline)),
      ),
      images.length > 0 ? this.#leaseHoldings(call) : [],
    ]);
    const pulling = new Set(
      holdings.flatMap((lease) => lease.resources.filter((r) => r.type === "content"))
        .map((r) => r.id),
    );
    const candidates = this.#candidates(tagged, listed, pulling);
    const sizes = new Map(listed.map((info) => [info.digest, Number(info.size)]));
    const toRead = new Set([...candidates.values()].flatMap((set) => [...set]));
    await Promise.all(
      [...toRead].map((digest) =>
        this.#manifest(digest, sizes.get(digest), call.signal, call.deadline)
      ),
    );
    const wanted = [...candidates.values(), ...pinnedManifests].flatMap((digests) =>
      [...digests].flatMap((digest) => this.#blobsOf(digest).map((blob) => blob.digest))
    );
    const state: ContentState = { committed: await this.#committedSizes(wanted, call), ingests };
    const result = new Map<string, ImageProgress>();
    /** Per image shown: the digests of its manifests. */
    const manifestsOf = new Map<string, string[]>();
    for (const [image, ref] of tagged) {
      const progress = this.#taggedProgress(image, ref, listed, candidates.get(image)!, {
        ...state,
        pulling,
      });
      if (!progress) continue;
      result.set(image, progress);
      manifestsOf.set(image, [...this.#attributed.get(image)!]);
    }
    pinned.forEach(([image, ref], i) => {
      const found = pinnedManifests[i].filter((d) => this.#blobsOf(d).length > 0);
      if (found.length === 0) return;
      result.set(image, progressOf(found.map((d) => this.#blobsOf(d)), state));
      manifestsOf.set(image, [ref.digest!, ...found]);
    });
    this.#readLeases(result, manifestsOf, state.committed, holdings);
    return result;
  }

  /**
   * What the leases tell about the images shown: marks as `unpacking` those whose blobs have all
   * arrived and whose pull's lease holds a snapshot, and hands the keeper what to keep.
   */
  #readLeases(
    result: Map<string, ImageProgress>,
    manifestsOf: Map<string, string[]>,
    committed: ReadonlyMap<string, number>,
    holdings: readonly LeaseHoldings[],
  ): void {
    const digestsOf = new Map(
      [...manifestsOf].map(([image, manifests]) => [image, this.#digestsOf(manifests)]),
    );
    const arrived = [...result].filter(([, p]) =>
      p.activeDownloads === 0 && p.totalBytes !== undefined && p.receivedBytes >= p.totalBytes
    );
    this.#keep(digestsOf, committed, holdings);
    for (const [image, progress] of arrived) {
      if (isUnpacking(holdings, digestsOf.get(image)!)) {
        result.set(image, { ...progress, unpacking: true });
      }
    }
  }

  /** A set of the digests of `manifests` and of their blobs. */
  #digestsOf(manifests: string[]): Set<string> {
    return new Set([
      ...manifests,
      ...manifests.flatMap((d) => this.#blobsOf(d).map((blob) => blob.digest)),
    ]);
  }

  /**
   * Hands the keeper, for the images shown: their manifests, their committed blobs, the ingests
   * of the blobs being downloaded (a retry resumes them with a range request) and the snapshots
   * their pulls have committed (so that a retry neither downloads nor unpacks again, and never
   * finds a parent snapshot collected under it).
   */
  #keep(
    digestsOf: Map<string, Set<string>>,
    committed: ReadonlyMap<string, number>,
    holdings: readonly LeaseHoldings[],
  ): void {
    if (!this.#keeper) return;
    const resources: LeaseResource[] = [];
    for (const digests of digestsOf.values()) {
      for (const digest of digests) {
        const isManifest = this.#manifests.has(digest);
        if (isManifest || committed.has(digest)) resources.push({ id: digest, type: "content" });
        const ingest = this.#ingestRefs.get(digest);
        if (ingest) resources.push({ id: ingest, type: "ingests" });
      }
      resources.push(...committedSnapshots(holdings, digests));
    }
    this.#keeper.keep(resources);
  }

  /** What the namespace's newest leases hold (the keeper's own lease, and older ones, left out). */
  async #leaseHoldings(call: Call): Promise<LeaseHoldings[]> {
    const listed = await this.#leases.list(call);
    // With a keeper, only the leases made since it: a lease left by a pull that containerd lost
    // (a restart) would otherwise look like a pull unpacking until it expires a day later.
    const since = listed.find((lease) => lease.id === this.#keeper?.id)?.createdAt ?? 0;
    const leases = listed
      .filter((lease) => lease.id !== this.#keeper?.id && lease.createdAt >= since)
      .sort((a, b) => b.createdAt - a.createdAt)
      .slice(0, MAX_LEASES_READ);
    return await Promise.all(
      leases.map(async (lease) => ({
        id: lease.id,
        resources: await this.#leases.listResources(lease.id, call),
      })),
    );
  }

  /**
   * Splits the images into those named by tag and those pinned by digest; invalid references
   * cannot be pulled either and simply have nothing to show.
   */
  #parseImages(images: string[]): { tagged: ImageEntry[]; pinned: ImageEntry[] } {
    const refs = new Map<string, ImageReference>();
    for (const image of images) {
      try {
        refs.set(image, parseImageReference(image));
      } catch {
        // nothing to show
      }
    }
    return {
      tagged: [...refs].filter(([, ref]) => ref.digest === undefined),
      pinned: [...refs].filter(([, ref]) => ref.digest !== undefined),
    };
  }

  /**
   * The bytes written so far of every blob being downloaded, by digest; remembers each one's
   * ingest ref for the keeper.
   */
  async #ingestOffsets(call: Call): Promise<Map<string, number>> {
    const ingests = new Map<string, number>();
    this.#ingestRefs.clear();
    for (const status of await this.listIngests(call.signal, call.deadline)) {
      const digest = ingestDigest(status.ref);
      if (!digest) continue;
      ingests.set(digest, Number(status.offset));
      this.#ingestRefs.set(digest, status.ref);
    }
    return ingests;
  }

  /** The committed manifests of the tagged images' repositories, in one `List` call. */
  #repositoryManifests(tagged: ImageEntry[], call: Call): Promise<RawInfo[]> {
    const filters = [
      ...new Set(tagged.map(([, ref]) => repositoryManifestFilter(ref.registry, ref.repository))),
    ];
    return filters.length === 0
      ? Promise.resolve([])
      : this.#list(filters, call.signal, call.deadline);
  }

  /**
   * Per tagged image, the manifests of its repository still missing blobs, and those attributed
   * to it before (while they are still in the store).
   */
  #candidates(
    tagged: ImageEntry[],
    listed: RawInfo[],
    pulling: ReadonlySet<string>,
  ): Map<string, Set<string>> {
    const candidates = new Map<string, Set<string>>();
    for (const [image, ref] of tagged) {
      const key = distributionSourceLabelKey(ref.registry);
      const previous = this.#attributed.get(image) ?? new Set();
      const digests = new Set<string>();
      for (const info of listed) {
        if (!labelListsRepository(info.labels?.[key], ref.repository)) continue;
        const fresh = previous.has(info.digest) || pulling.has(info.digest);
        if (fresh || !this.#complete.has(completeKey(info))) {
          digests.add(info.digest);
        }
      }
      candidates.set(image, digests);
    }
    return candidates;
  }

  /** The sizes of the `wanted` blobs that are committed, in one `List` call. */
  async #committedSizes(wanted: string[], call: Call): Promise<Map<string, number>> {
    const committed = new Map<string, number>();
    if (wanted.length === 0) return committed;
    const filter = `digest~=${quote(`^(?:${[...new Set(wanted)].join("|")})$`)}`;
    for (const info of await this.#list([filter], call.signal, call.deadline)) {
      committed.set(info.digest, Number(info.size));
    }
    return committed;
  }

  /**
   * Attributes the candidate manifests to a tagged image and adds up their blobs; remembers the
   * manifests found complete, so that later samples skip them.
   */
  #taggedProgress(
    image: string,
    ref: ImageReference,
    listed: RawInfo[],
    candidates: Set<string>,
    state: ContentState & { pulling: ReadonlySet<string> },
  ): ImageProgress | undefined {
    const mine = listed
      .filter((info) => candidates.has(info.digest))
      .map((info) => ({
        digest: info.digest,
        labels: info.labels ?? {},
        blobs: this.#blobsOf(info.digest),
      }));
    // Complete manifests that a pull's lease holds are being pulled now, not already on the node.
    const previous = new Set([
      ...this.#attributed.get(image) ?? [],
      ...mine.map((m) => m.digest).filter((digest) => state.pulling.has(digest)),
    ]);
    const attributed = attributeManifests(ref, mine, previous, state.committed);
    for (const info of listed) {
      const complete = candidates.has(info.digest) && !attributed.includes(info.digest) &&
        this.#blobsOf(info.digest).length > 0;
      if (complete) remember(this.#complete, completeKey(info));
    }
    if (attributed.length === 0) {
      this.#attributed.delete(image);
      return undefined;
    }
    this.#attributed.delete(image);
    if (this.#attributed.size >= CACHE_LIMIT) {
      this.#attributed.delete(this.#attributed.keys().next().value!);
    }
    this.#attributed.set(image, new Set(attributed));
    return progressOf(attributed.map((digest) => this.#blobsOf(digest)), state);
  }

  /** The blobs of a manifest read earlier; none for an index or one not read. */
  #blobsOf(digest: string): BlobDescriptor[] {
    const manifest = this.#manifests.get(digest);
    return manifest?.kind === "manifest" ? manifest.blobs : [];
  }

  /** Closes the connections to containerd. */
  close(): void {
    this.#client.close();
    this.#leases.close();
  }

  /** Closes the connection to containerd. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Lists the namespace's active ingests; {@linkcode probeProgress} uses it as its cheap call. */
  async listIngests(
    signal?: AbortSignal,
    deadline = Date.now() + this.#timeoutMs,
  ): Promise<IngestStatus[]> {
    const response = await this.#unary<{ statuses: IngestStatus[] }>(
      "ListStatuses",
      { filters: [] },
      signal,
      deadline,
    );
    return response.statuses ?? [];
  }

  /**
   * The image manifests a digest-pinned reference stands for, once they are in the store: the
   * manifest itself, or the children of an index that containerd has fetched (its platform's).
   */
  async #pinnedManifests(
    digest: string,
    signal: AbortSignal | undefined,
    deadline: number,
  ): Promise<string[]> {
    const manifest = this.#manifests.get(digest) ??
      await this.#manifest(digest, undefined, signal, deadline);
    if (manifest?.kind === "manifest") return [digest];
    if (manifest?.kind !== "index") return [];
    const children = await Promise.all(
      manifest.manifests.map((child) => this.#manifest(child, undefined, signal, deadline)),
    );
    return manifest.manifests.filter((_, i) => children[i]?.kind === "manifest");
  }

  /** Reads and caches a manifest; `undefined` while it is not committed. */
  async #manifest(
    digest: string,
    size: number | undefined,
    signal: AbortSignal | undefined,
    deadline: number,
  ): Promise<ParsedManifest | undefined> {
    const cached = this.#manifests.get(digest);
    if (cached) return cached;
    if (size === undefined) {
      try {
        const response = await this.#unary<{ info: RawInfo }>("Info", { digest }, signal, deadline);
        size = Number(response.info.size);
      } catch (error) {
        if (error instanceof ContentServiceError && error.code === grpc.status.NOT_FOUND) {
          return undefined;
        }
        throw error;
      }
    }
    let manifest: ParsedManifest = { kind: "unknown" };
    if (size <= MAX_MANIFEST_BYTES) {
      const chunks = await this.#stream<{ data: Uint8Array }>(
        "Read",
        { digest, offset: 0, size: 0 },
        signal,
        deadline,
      ).catch((error) => {
        if (error instanceof ContentServiceError && error.code === grpc.status.NOT_FOUND) {
          return undefined;
        }
        throw error;
      });
      if (chunks === undefined) return undefined;
      const bytes = new Uint8Array(chunks.reduce((sum, c) => sum + c.data.byteLength, 0));
      let offset = 0;
      for (const chunk of chunks) {
        bytes.set(chunk.data, offset);
        offset += chunk.data.byteLength;
      }
      manifest = parseManifest(bytes);
    }
    if (this.#manifests.size >= CACHE_LIMIT) {
      this.#manifests.delete(this.#manifests.keys().next().value!);
    }
    this.#manifests.set(digest, manifest);
    return manifest;
  }

  async #list(
    filters: string[],
    signal: AbortSignal | undefined,
    deadline: number,
  ): Promise<RawInfo[]> {
    const responses = await this.#stream<{ info: RawInfo[] }>(
      "List",
      { filters },
      signal,
      deadline,
    );
    return responses.flatMap((response) => response.info ?? []);
  }

  #metadata(): grpc.Metadata {
    return namespaceMetadata(this.#namespace);
  }

  #unary<T>(
    method: string,
    request: unknown,
    signal: AbortSignal | undefined,
    deadline: number,
  ): Promise<T> {
    return containerdUnary<T>(this.#client, method, request, {
      namespace: this.#namespace,
      deadline,
      signal,
      error: (error) => new ContentServiceError(method, this.socket, error),
    });
  }

  #stream<T>(
    method: string,
    request: unknown,
    signal: AbortSignal | undefined,
    deadline: number,
  ): Promise<T[]> {
    return new Promise<T[]>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const fn = (this.#client as unknown as Record<string, StreamMethod>)[method]
        .bind(this.#client);
      const call = fn(request, this.#metadata(), { deadline });
      const onAbort = () => call.cancel();
      const messages: T[] = [];
      call.on("data", (message: T) => messages.push(message));
      call.on("error", (error: grpc.ServiceError) => {
        signal?.removeEventListener("abort", onAbort);
        if (signal?.aborted) reject(signal.reason);
        else reject(new ContentServiceError(method, this.socket, error));
      });
      call.on("end", () => {
        signal?.removeEventListener("abort", onAbort);
        resolve(messages);
      });
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }
}

/** Quotes a filter field or value the way containerd's filter syntax (Go string syntax) wants. */
function quote(text: string): string {
  return JSON.stringify(text);
}

/** Adds to a bounded set, forgetting the oldest entry when it is full. */
function remember(set: Set<string>, key: string): void {
  if (set.size >= CACHE_LIMIT) set.delete(set.values().next().value!);
  set.add(key);
}

function labelListsRepository(label: string | undefined, repository: string): boolean {
  return label !== undefined && label.split(",").includes(repository);
}

function completeKey(info: RawInfo): string {
  return `${info.digest}@${info.created_at?.seconds ?? 0}.${info.created_at?.nanos ?? 0}`;
}

function isDescriptor(value: unknown): value is BlobDescriptor {
  if (typeof value !== "object" || value === null) return false;
  const { digest, size } = value as Record<string, unknown>;
  return typeof digest === "string" && typeof size === "number";
}
