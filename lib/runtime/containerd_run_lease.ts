/**
 * The containerd lease a `fetch` run holds, so that what a cut attempt committed survives it.
 *
 * containerd garbage-collects the blobs and snapshots a cancelled pull committed as soon as the
 * pull's own lease ends, so without help a retry downloads the whole image again. The run's lease
 * holds every committed blob of the images being pulled, the downloads in progress and every
 * snapshot their pulls committed (the progress source hands them over as it sees them), and a
 * retry finds them: containerd's fetch skips a blob that is already in the content store and
 * resumes a download where it stopped, its unpack skips a layer already unpacked. The lease ends with the run; if `fetch` is killed before it can delete the lease, the
 * label `containerd.io/gc.expire` (the run's overall timeout plus a minute from its start) makes
 * containerd drop it then.
 *
 * @module
 */
import { ContainerdLeases, GC_EXPIRE_LABEL, type LeaseResource } from "./containerd_leases.ts";

/** Options for {@linkcode openRunLease}. */
export interface RunLeaseOptions {
  /** The run's overall timeout; the lease expires a minute after it. */
  overallTimeoutMs: number;
  /** The containerd namespace the pulls happen in. @default {"k8s.io"} */
  namespace?: string;
  /** Deadline of one call, in milliseconds. @default {2000} */
  timeoutMs?: number;
  /** Cancels the creation. */
  signal?: AbortSignal;
  /** Told once when holding a blob fails, with the error. */
  onError?: (error: unknown) => void;
}

const EXPIRY_MARGIN_MS = 60_000;
/** How long a release waits for the blobs still being added before it deletes the lease. */
const DRAIN_WAIT_MS = 500;
/** How many resources the lease remembers having added; past it, the oldest are forgotten. */
const KEPT_LIMIT = 100_000;

/**
 * Creates the run's lease on `socket` and returns it.
 *
 * @throws {LeasesServiceError} When the lease cannot be created (no leases service: CRI-O).
 *
 * @example
 * ```ts
 * import { openRunLease } from "./containerd_run_lease.ts";
 *
 * async function run(): Promise<void> {
 *   await using lease = await openRunLease("/run/containerd/containerd.sock", {
 *     overallTimeoutMs: 3_600_000,
 *   });
 *   lease.keep([{ type: "content", id: "sha256:" + "ab".repeat(32) }]);
 * }
 * ```
 */
export async function openRunLease(socket: string, options: RunLeaseOptions): Promise<RunLease> {
  const leases = new ContainerdLeases(socket, options.namespace);
  const id = `image-prefetcher-${crypto.randomUUID()}`;
  const expires = new Date(Date.now() + options.overallTimeoutMs + EXPIRY_MARGIN_MS);
  const timeoutMs = options.timeoutMs ?? 2000;
  try {
    await leases.create(id, { [GC_EXPIRE_LABEL]: expires.toISOString().replace(/\.\d+Z$/, "Z") }, {
      deadline: Date.now() + timeoutMs,
      signal: options.signal,
    });
  } catch (error) {
    leases.close();
    throw error;
  }
  return new RunLease(leases, id, timeoutMs, options.onError);
}

/** A lease of `fetch`'s own that holds what is handed to {@linkcode RunLease.keep}. */
export class RunLease implements AsyncDisposable {
  /** The lease's ID (`image-prefetcher-<uuid>`). */
  readonly id: string;
  readonly #leases: ContainerdLeases;
  readonly #timeoutMs: number;
  readonly #onError?: (error: unknown) => void;
  readonly #kept = new Set<string>();
  #queue: LeaseResource[] = [];
  #draining?: Promise<void>;
  #reported = false;
  #released?: Promise<void>;

  /** Wraps a lease that exists; use {@linkcode openRunLease}. */
  constructor(
    leases: ContainerdLeases,
    id: string,
    timeoutMs: number,
    onError?: (error: unknown) => void,
  ) {
    this.#leases = leases;
    this.id = id;
    this.#timeoutMs = timeoutMs;
    this.#onError = onError;
  }

  /**
   * Makes the lease hold `resources` (committed blobs, `content`; downloads, `ingests`; snapshots,
   * `snapshots/<snapshotter>`), in the background, each once.
   */
  keep(resources: Iterable<LeaseResource>): void {
    if (this.#released) return;
    for (const resource of resources) {
      const key = `${resource.type} ${resource.id}`;
      if (this.#kept.has(key)) continue;
      if (this.#kept.size >= KEPT_LIMIT) this.#kept.delete(this.#kept.values().next().value!);
      this.#kept.add(key);
      this.#queue.push(resource);
    }
    if (this.#queue.length > 0) this.#draining ??= this.#drain();
  }

  /** Waits (briefly) for the blobs being added, then deletes the lease. Idempotent. */
  release(): Promise<void> {
    return this.#released ??= this.#release();
  }

  /** Same as {@linkcode RunLease.release}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const resource = this.#queue.shift()!;
      try {
        await this.#leases.addResource(this.id, resource, {
          deadline: Date.now() + this.#timeoutMs,
        });
      } catch (error) {
        this.#kept.delete(`${resource.type} ${resource.id}`);
        // Once the lease is being released, a cancelled add is that release, not a failure.
        if (!this.#released) this.#report(error);
      }
    }
    this.#draining = undefined;
  }

  async #release(): Promise<void> {
    this.#queue = [];
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<void>((resolve) => timer = setTimeout(resolve, DRAIN_WAIT_MS));
    try {
      await Promise.race([this.#draining, timeout]);
      await this.#leases.delete(this.id, { deadline: Date.now() + this.#timeoutMs });
    } catch (error) {
      this.#report(error);
    } finally {
      clearTimeout(timer);
      this.#leases.close();
    }
  }

  #report(error: unknown): void {
    if (this.#reported) return;
    this.#reported = true;
    this.#onError?.(error);
  }
}
