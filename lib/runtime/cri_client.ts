/**
 * A small client for the Container Runtime Interface (CRI, `runtime.v1`) over a UNIX socket:
 * just what prefetching needs (runtime version, image status, pull, remove).
 *
 * Works with any CRI runtime (containerd, CRI-O). Every call takes an `AbortSignal` that
 * cancels the call on the runtime's side too, and every call but a pull has a deadline (a pull is
 * bounded by its attempt's signal, which its caller cuts at the attempt's and the run's end).
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import criProto from "../../proto/cri.proto" with { type: "text" };
import { loadProto, serviceConstructor } from "../core/proto.ts";
import { CriError } from "./cri_error.ts";

export { CriError };

/** What the runtime on the socket says about itself. */
export interface RuntimeVersion {
  /** For example `containerd` or `cri-o`. */
  runtimeName: string;
  /** The runtime's own version. */
  runtimeVersion: string;
  /** The CRI API version it speaks, e.g. `v1`. */
  runtimeApiVersion: string;
}

/** An image known to the runtime. */
export interface CriImage {
  /** The image ID (config digest). */
  id: string;
  /** Tags the image is known by, e.g. `docker.io/library/debian:12`. */
  repoTags: string[];
  /** Digests the image is known by, e.g. `docker.io/library/debian@sha256:…`. */
  repoDigests: string[];
  /** The size the runtime reports for the image, in bytes. */
  sizeBytes: number;
  /** Whether the runtime keeps it out of the kubelet's image garbage collection. */
  pinned: boolean;
}

/** Registry credentials in the form CRI's `AuthConfig` carries them. */
export interface CriAuth {
  /** User name for basic authentication. */
  username?: string;
  /** Password for basic authentication. */
  password?: string;
  /** Base64 of `username:password`, as docker config files store it. */
  auth?: string;
  /** The registry the credentials are for. */
  serverAddress?: string;
  /** An OAuth2 refresh token. */
  identityToken?: string;
  /** A bearer token sent to the registry as is. */
  registryToken?: string;
}

/** Options for every call. */
export interface CallOptions {
  /** Cancels the call, on the runtime's side too. */
  signal?: AbortSignal;
  /**
   * Gives the call up after this many milliseconds.
   * @default {the client's callTimeoutMs; none for pullImage}
   */
  timeoutMs?: number;
}

/** Options for {@linkcode CriClient}. */
export interface CriClientOptions {
  /**
   * The deadline of every call but `pullImage`, in milliseconds: a runtime that stops answering
   * does not hold a run until its overall timeout.
   * @default {30_000}
   */
  callTimeoutMs?: number;
}

/** Options for {@linkcode CriClient.pullImage}. */
export interface PullOptions extends CallOptions {
  /** Credentials for the image's registry; anonymous when absent. */
  auth?: CriAuth;
}

const runtimeV1 = loadProto(criProto);
const RuntimeService = serviceConstructor(runtimeV1, "runtime.v1.RuntimeService");
const ImageService = serviceConstructor(runtimeV1, "runtime.v1.ImageService");

/** Turns a socket path into a gRPC target; `unix://` prefixes are accepted as given. */
export function socketTarget(socket: string): string {
  if (socket.startsWith("unix:")) return socket;
  return `unix:${socket}`;
}

type Callback<T> = (error: grpc.ServiceError | null, response: T) => void;
type UnaryMethod = (
  request: unknown,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: Callback<unknown>,
) => grpc.ClientUnaryCall;

/**
 * A CRI client for one runtime socket. One gRPC channel serves every call; close it with
 * {@linkcode CriClient.close} or `using`.
 *
 * @example
 * ```ts
 * import { CriClient } from "./cri_client.ts";
 *
 * // Pulls debian:12 onto the node and returns the runtime's image ID.
 * async function pullDebian(): Promise<string> {
 *   using cri = new CriClient("/run/containerd/containerd.sock");
 *   return await cri.pullImage("docker.io/library/debian:12");
 * }
 * ```
 */
export class CriClient implements Disposable {
  /** The socket path this client talks to. */
  readonly socket: string;
  #runtime: grpc.Client;
  #images: grpc.Client;
  #callTimeoutMs: number;

  /** Creates a client; no connection is made until the first call. */
  constructor(socket: string, options: CriClientOptions = {}) {
    this.socket = socket;
    this.#callTimeoutMs = options.callTimeoutMs ?? 30_000;
    const target = socketTarget(socket);
    const credentials = grpc.credentials.createInsecure();
    this.#runtime = new RuntimeService(target, credentials);
    // Share one channel between both services.
    this.#images = new ImageService(target, credentials, {
      channelOverride: this.#runtime.getChannel(),
    });
  }

  /** Asks the runtime for its name and version; a cheap way to check the socket answers. */
  async version(options: CallOptions = {}): Promise<RuntimeVersion> {
    const response = await this.#call<{
      runtime_name: string;
      runtime_version: string;
      runtime_api_version: string;
    }>(this.#runtime, "Version", { version: "v1" }, this.#bounded(options));
    return {
      runtimeName: response.runtime_name,
      runtimeVersion: response.runtime_version,
      runtimeApiVersion: response.runtime_api_version,
    };
  }

  /** Returns the image when the runtime has it, `undefined` when it does not. */
  async imageStatus(image: string, options: CallOptions = {}): Promise<CriImage | undefined> {
    const response = await this.#call<{ image: RawImage | null }>(
      this.#images,
      "ImageStatus",
      { image: { image } },
      this.#bounded(options),
    );
    if (!response.image || !response.image.id) return undefined;
    return {
      id: response.image.id,
      repoTags: response.image.repo_tags ?? [],
      repoDigests: response.image.repo_digests ?? [],
      sizeBytes: Number(response.image.size ?? 0),
      pinned: response.image.pinned ?? false,
    };
  }

  /** Pulls an image and returns the image reference the runtime stored it under. */
  async pullImage(image: string, options: PullOptions = {}): Promise<string> {
    const request: Record<string, unknown> = { image: { image } };
    if (options.auth) request.auth = toAuthConfig(options.auth);
    const response = await this.#call<{ image_ref: string }>(
      this.#images,
      "PullImage",
      request,
      options,
    );
    return response.image_ref;
  }

  /** Removes an image from the node; removing an absent image succeeds. */
  async removeImage(image: string, options: CallOptions = {}): Promise<void> {
    await this.#call(this.#images, "RemoveImage", { image: { image } }, this.#bounded(options));
  }

  /** Closes the connection to the runtime. */
  close(): void {
    this.#images.close();
    this.#runtime.close();
  }

  /** Closes the connection to the runtime. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** The options with the client's call timeout, unless they have one. */
  #bounded(options: CallOptions): CallOptions {
    return { ...options, timeoutMs: options.timeoutMs ?? this.#callTimeoutMs };
  }

  #call<T>(
    client: grpc.Client,
    method: string,
    request: unknown,
    { signal, timeoutMs }: CallOptions,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const onAbort = () => call.cancel();
      const fn = (client as unknown as Record<string, UnaryMethod>)[method].bind(client);
      // gRPC takes a time of day, and turns it into a timer as the call starts.
      const callOptions = timeoutMs === undefined ? {} : { deadline: Date.now() + timeoutMs };
      const call = fn(request, new grpc.Metadata(), callOptions, (error, response) => {
        signal?.removeEventListener("abort", onAbort);
        if (signal?.aborted) reject(signal.reason);
        else if (error) reject(new CriError(method, error));
        else resolve(response as T);
      });
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }
}

interface RawImage {
  id: string;
  repo_tags?: string[];
  repo_digests?: string[];
  size?: number | string;
  pinned?: boolean;
}

function toAuthConfig(auth: CriAuth): Record<string, string> {
  return {
    username: auth.username ?? "",
    password: auth.password ?? "",
    auth: auth.auth ?? "",
    server_address: auth.serverAddress ?? "",
    identity_token: auth.identityToken ?? "",
    registry_token: auth.registryToken ?? "",
  };
}
