/**
 * containerd's leases service on the CRI socket (`containerd.services.leases.v1.Leases`): what
 * the leases of pulls in progress hold, and the calls `fetch` makes for a lease of its own.
 *
 * What containerd shows, measured (see `tests/big_image_e2e_test.ts`): a CRI pull holds a lease
 * (label `containerd.io/gc.expire`, 24 h ahead) for as long as it runs, and containerd deletes it
 * when the pull returns. The lease holds the pull's blobs (`content`, the digest), its downloads
 * (`ingests`, e.g. `layer-sha256:<hex>`) and the snapshots it unpacks into
 * (`snapshots/<snapshotter>`). While a layer is applied, its snapshot is active under the key
 * `extract-<n>-<random> sha256:<chain id>`; once applied it is committed under its chain ID, and
 * the next layer's `extract-` snapshot follows a moment later (0.2 to 0.4 s on 1.6, measured with
 * 256 MiB layers). containerd 1.6 and 1.7 prepare the snapshot of a layer before its download
 * ends, so a snapshot in a pull's lease means "unpacking" only once the image's blobs have all
 * arrived; from then until the pull returns (the last layer committed, the image recorded), the
 * lease holds the image's blobs and at least one snapshot.
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import leasesProto from "../../proto/containerd_leases.proto" with { type: "text" };
import { loadProto, serviceConstructor } from "../core/proto.ts";
import { ContainerdServiceError, containerdUnary } from "./_containerd_call.ts";
import { socketTarget } from "./cri_client.ts";

/** The key prefix of the active snapshot a layer is being applied into. */
export const EXTRACT_KEY_PREFIX = "extract-";
/** The lease label that makes containerd drop the lease after this time (RFC 3339). */
export const GC_EXPIRE_LABEL = "containerd.io/gc.expire";

/** A call to containerd's leases service failed; `code` is the gRPC status code. */
export class LeasesServiceError extends ContainerdServiceError {
  /** Wraps a failed call of `method` on `socket`. */
  constructor(method: string, socket: string, error: { code: number; details?: string }) {
    super("leases", method, socket, error);
    this.name = "LeasesServiceError";
  }
}

/** One resource a lease holds. */
export interface LeaseResource {
  /** A digest (`content`), an ingest ref (`ingests`) or a snapshot key (`snapshots/…`). */
  id: string;
  /** `content`, `ingests` or `snapshots/<snapshotter>`. */
  type: string;
}

/** A lease and what it holds. */
export interface LeaseHoldings {
  /** The lease's ID. */
  id: string;
  /** What it holds. */
  resources: LeaseResource[];
}

/** A lease as listed. */
export interface LeaseInfo {
  /** The lease's ID. */
  id: string;
  /** Creation time, seconds since the epoch (0 when not given). */
  createdAt: number;
  /** Its labels. */
  labels: Record<string, string>;
}

/** The deadline and cancellation of one call. */
export interface LeaseCall {
  /** When the call is given up, in milliseconds since the epoch. */
  deadline: number;
  /** Cancels the call. */
  signal?: AbortSignal;
}

/**
 * Tells whether a pull of the image whose blobs and manifests are `digests` is unpacking: a lease
 * that holds one of them (as a blob or a download) holds a snapshot too, being applied
 * (`extract-…`) or committed. From its first layer to the pull's return, with no gap between
 * layers.
 *
 * @example
 * ```ts
 * import { isUnpacking } from "./containerd_leases.ts";
 *
 * isUnpacking([{
 *   id: "1-a",
 *   resources: [
 *     { type: "content", id: "sha256:aa" },
 *     { type: "snapshots/overlayfs", id: "extract-1-b sha256:cc" },
 *   ],
 * }], new Set(["sha256:aa"])); // true
 * ```
 */
export function isUnpacking(
  leases: readonly LeaseHoldings[],
  digests: ReadonlySet<string>,
): boolean {
  return leases.some((lease) =>
    lease.resources.some((r) => r.type.startsWith("snapshots/")) &&
    lease.resources.some((r) => holdsBlob(r, digests))
  );
}

/**
 * The snapshots that the leases holding one of `digests` have committed (not the `extract-` ones
 * being applied): the layers a pull of that image has unpacked so far.
 */
export function committedSnapshots(
  leases: readonly LeaseHoldings[],
  digests: ReadonlySet<string>,
): LeaseResource[] {
  return leases
    .filter((lease) => lease.resources.some((r) => holdsBlob(r, digests)))
    .flatMap((lease) =>
      lease.resources.filter((r) => r.type.startsWith("snapshots/") && !isExtractKey(r.id))
    );
}

function isExtractKey(key: string): boolean {
  return key.startsWith(EXTRACT_KEY_PREFIX);
}

function holdsBlob(resource: LeaseResource, digests: ReadonlySet<string>): boolean {
  if (resource.type === "content") return digests.has(resource.id);
  if (resource.type !== "ingests") return false;
  const digest = /(sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128})$/
    .exec(resource.id)?.[1];
  return digest !== undefined && digests.has(digest);
}

const Leases = serviceConstructor(loadProto(leasesProto), "containerd.services.leases.v1.Leases");

/**
 * A client of containerd's leases service.
 *
 * @example
 * ```ts
 * import { ContainerdLeases } from "./containerd_leases.ts";
 *
 * // The IDs of the leases in CRI's namespace.
 * async function leaseIds(): Promise<string[]> {
 *   using leases = new ContainerdLeases("/run/containerd/containerd.sock");
 *   const listed = await leases.list({ deadline: Date.now() + 2000 });
 *   return listed.map((lease) => lease.id);
 * }
 * ```
 */
export class ContainerdLeases implements Disposable {
  /** The socket path this client calls. */
  readonly socket: string;
  readonly #client: grpc.Client;
  readonly #namespace: string;

  /** Creates a client in `namespace` (CRI's `k8s.io` by default); connects on the first call. */
  constructor(socket: string, namespace = "k8s.io") {
    this.socket = socket;
    this.#namespace = namespace;
    this.#client = new Leases(socketTarget(socket), grpc.credentials.createInsecure());
  }

  /** Lists the namespace's leases. */
  async list(call: LeaseCall): Promise<LeaseInfo[]> {
    type Raw = {
      id: string;
      created_at?: { seconds: number } | null;
      labels?: LeaseInfo["labels"];
    };
    const response = await this.#unary<{ leases?: Raw[] }>("List", { filters: [] }, call);
    return (response.leases ?? []).map((lease) => ({
      id: lease.id,
      createdAt: Number(lease.created_at?.seconds ?? 0),
      labels: lease.labels ?? {},
    }));
  }

  /** Lists what the lease `id` holds. */
  async listResources(id: string, call: LeaseCall): Promise<LeaseResource[]> {
    const response = await this.#unary<{ resources?: LeaseResource[] }>(
      "ListResources",
      { id },
      call,
    );
    return response.resources ?? [];
  }

  /** Creates the lease `id` with `labels`. */
  async create(id: string, labels: Record<string, string>, call: LeaseCall): Promise<void> {
    await this.#unary("Create", { id, labels }, call);
  }

  /** Makes the lease `id` hold `resource`; holding it twice is harmless. */
  async addResource(id: string, resource: LeaseResource, call: LeaseCall): Promise<void> {
    await this.#unary("AddResource", { id, resource }, call);
  }

  /** Deletes the lease `id`; what only it held becomes collectable. */
  async delete(id: string, call: LeaseCall): Promise<void> {
    await this.#unary("Delete", { id, sync: false }, call);
  }

  /** Closes the connection. */
  close(): void {
    this.#client.close();
  }

  /** Closes the connection. */
  [Symbol.dispose](): void {
    this.close();
  }

  #unary<T>(method: string, request: unknown, call: LeaseCall): Promise<T> {
    return containerdUnary<T>(this.#client, method, request, {
      namespace: this.#namespace,
      deadline: call.deadline,
      signal: call.signal,
      error: (error) => new LeasesServiceError(method, this.socket, error),
    });
  }
}
