/**
 * Pins images through containerd's images service on the CRI socket, so that the kubelet's image
 * garbage collection leaves them alone.
 *
 * containerd's CRI plugin (1.7 and later) reports an image as `pinned` in CRI `ImageStatus` and
 * `ListImages` when any of its image records (its tag, its repo digest, its ID `sha256:<config
 * digest>`) carries the label `io.cri-containerd.pinned=pinned`; the kubelet never
 * garbage-collects a pinned image. The CRI plugin learns of the label from the image-update event
 * the images service publishes, so it shows within moments, and it reads the labels again when it
 * starts. A pull rewrites the record of the name it pulls by (labels included), so only the ID
 * record keeps a label across pulls. containerd 1.6 accepts the label but never reports `pinned`.
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import imagesProto from "../../proto/containerd_images.proto" with { type: "text" };
import { loadProto, serviceConstructor } from "../core/proto.ts";
import { ContainerdServiceError, containerdUnary } from "./_containerd_call.ts";
import { socketTarget } from "./cri_client.ts";
import {
  type LabelChange,
  ownerLabelKey,
  pinChange,
  PINNED_LABEL_KEY,
  PINNED_LABEL_VALUE,
  releaseChange,
} from "./pin_labels.ts";

export { PINNED_LABEL_KEY, PINNED_LABEL_VALUE };

/** Labels image records; what {@linkcode pinImages} needs from the runtime. */
export interface ImageLabeler {
  /**
   * Sets {@linkcode PINNED_LABEL_KEY} on the image record called `name`, and with `owner` the
   * labels that say who pinned it (`pin_labels.ts`).
   *
   * @throws {ImagesServiceError} with `code` NOT_FOUND when there is no such record, UNIMPLEMENTED
   * when the socket has no images service.
   */
  pin(name: string, options?: { signal?: AbortSignal; owner?: string }): Promise<void>;
}

/** Options for {@linkcode ContainerdImages}. */
export interface ContainerdImagesOptions {
  /** The containerd namespace CRI keeps its images in. @default {"k8s.io"} */
  namespace?: string;
  /** Deadline of one call, in milliseconds. @default {5000} */
  timeoutMs?: number;
}

/** A call to containerd's images service failed; `code` is the gRPC status code. */
export class ImagesServiceError extends ContainerdServiceError {
  /** Wraps a failed call of `method` on `socket`. */
  constructor(method: string, socket: string, error: { code: number; details?: string }) {
    super("images", method, socket, error);
    this.name = "ImagesServiceError";
  }
}

interface RawImage {
  name: string;
  labels?: Record<string, string>;
  target?: { media_type: string; digest: string; size: number } | null;
}

const NOT_FOUND = 5;

const Images = serviceConstructor(loadProto(imagesProto), "containerd.services.images.v1.Images");

/**
 * containerd's images service on the CRI socket (`containerd.services.images.v1.Images`).
 *
 * @example
 * ```ts
 * import { ContainerdImages } from "./containerd_images.ts";
 *
 * // Keeps debian:12 out of the kubelet's image garbage collection (containerd ≥ 1.7).
 * async function pinDebian(): Promise<void> {
 *   using images = new ContainerdImages("/run/containerd/containerd.sock");
 *   await images.pin("docker.io/library/debian:12");
 * }
 * ```
 */
export class ContainerdImages implements ImageLabeler, Disposable {
  /** The socket path this client talks to. */
  readonly socket: string;
  #client: grpc.Client;
  #namespace: string;
  #timeoutMs: number;

  /** Creates a client; no connection is made until the first call. */
  constructor(socket: string, options: ContainerdImagesOptions = {}) {
    this.socket = socket;
    this.#namespace = options.namespace ?? "k8s.io";
    this.#timeoutMs = options.timeoutMs ?? 5000;
    this.#client = new Images(socketTarget(socket), grpc.credentials.createInsecure());
  }

  /**
   * Sets `io.cri-containerd.pinned=pinned` on the record `name`, leaving its other fields, and
   * with `owner` the labels that record who pinned it.
   *
   * The record is read first and sent back with its target: containerd 1.7.24 dereferences the
   * target of every `Update` request, even one whose mask names only a label, and a request
   * without one crashes the whole daemon (measured; see `tests/pin_e2e_test.ts`).
   */
  async pin(name: string, options: { signal?: AbortSignal; owner?: string } = {}): Promise<void> {
    const image = await this.#record(name, options.signal);
    await this.#change(image, pinChange(image.labels ?? {}, options.owner), options.signal);
  }

  /**
   * Releases `owner`'s pin of the record `name` (see `pin_labels.ts`): its owner label goes, and
   * the pin label too when no other owner is left and an image-prefetcher set it. Returns
   * whether `owner` had pinned it; a record that is gone counts as released.
   */
  async release(
    name: string,
    owner: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<boolean> {
    let image: RawImage & { target: NonNullable<RawImage["target"]> };
    try {
      image = await this.#record(name, options.signal);
    } catch (error) {
      if (error instanceof ImagesServiceError && error.code === NOT_FOUND) return false;
      throw error;
    }
    const change = releaseChange(image.labels ?? {}, owner);
    if (!change) return false;
    await this.#change(image, change, options.signal);
    return true;
  }

  /** The names of the records that carry `owner`'s pin label. */
  async pinnedBy(owner: string, options: { signal?: AbortSignal } = {}): Promise<string[]> {
    const { images } = await this.#unary<{ images?: RawImage[] }>(
      "List",
      { filters: [`labels."${ownerLabelKey(owner)}"`] },
      options.signal,
    );
    return (images ?? []).map((image) => image.name);
  }

  /** The labels of the record `name`. @throws {ImagesServiceError} NOT_FOUND when absent. */
  async labels(
    name: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<Record<string, string>> {
    const response = await this.#unary<{ image: RawImage | null }>(
      "Get",
      { name },
      options.signal,
    );
    return response.image?.labels ?? {};
  }

  /** Closes the connection. */
  close(): void {
    this.#client.close();
  }

  /** Closes the connection. */
  [Symbol.dispose](): void {
    this.close();
  }

  async #record(
    name: string,
    signal: AbortSignal | undefined,
  ): Promise<RawImage & { target: NonNullable<RawImage["target"]> }> {
    const { image } = await this.#unary<{ image: RawImage | null }>("Get", { name }, signal);
    if (!image?.target) {
      throw new ImagesServiceError("Get", this.socket, {
        code: NOT_FOUND,
        details: `image ${name} has no target`,
      });
    }
    return { ...image, target: image.target };
  }

  /** One `Update` that sets and clears labels (a masked label absent from the map is removed). */
  async #change(image: RawImage, change: LabelChange, signal: AbortSignal | undefined) {
    const keys = [...Object.keys(change.set), ...change.clear];
    await this.#unary("Update", {
      image: { name: image.name, target: image.target, labels: change.set },
      update_mask: { paths: keys.map((key) => `labels.${key}`) },
    }, signal);
  }

  #unary<T>(method: string, request: unknown, signal: AbortSignal | undefined): Promise<T> {
    return containerdUnary<T>(this.#client, method, request, {
      namespace: this.#namespace,
      // gRPC takes a time of day, and turns it into a timer as the call starts.
      deadline: Date.now() + this.#timeoutMs,
      signal,
      error: (error) => new ImagesServiceError(method, this.socket, error),
    });
  }
}
