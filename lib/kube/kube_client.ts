/**
 * A minimal Kubernetes API client on Deno's own `fetch`: HTTPS to the API server with a client
 * that trusts only the cluster's CA, and the service account token read from its file on every
 * request, so a rotated token is picked up at once.
 *
 * @module
 */
import { type ApiCall, KubeApiError } from "./kube_error.ts";
import type { InClusterConfig } from "./in_cluster.ts";

/** The body types the API server takes for a PATCH. */
export type PatchType =
  | "application/merge-patch+json"
  | "application/strategic-merge-patch+json"
  | "application/json-patch+json";

/** The part of the client that node code uses, so tests can pass a fake in pure logic tests. */
export interface NodeApi {
  /** Reads the node. */
  getNode(name: string, signal?: AbortSignal): Promise<KubeNode>;
  /** Patches the node with `body` of type `type`. */
  patchNode(name: string, type: PatchType, body: unknown, signal?: AbortSignal): Promise<KubeNode>;
}

/** The fields of a Node this program reads. */
export interface KubeNode {
  /** Name, labels and version. */
  metadata: { name: string; resourceVersion?: string; labels?: Record<string, string> };
  /** The taints. */
  spec?: { taints?: Taint[] };
}

/** The fields of a Pod this program reads. */
export interface KubePod {
  /** Name and UID. */
  metadata: { name: string; uid?: string };
  /** The node it is bound to, once scheduled. */
  spec?: { nodeName?: string };
}

/** A node taint. */
export interface Taint {
  /** The key. */
  key: string;
  /** The value, if any. */
  value?: string;
  /** `NoSchedule`, `PreferNoSchedule` or `NoExecute`. */
  effect: string;
  /** When it was added (NoExecute). */
  timeAdded?: string;
}

/** A core/v1 `Event`, as far as this program writes and reads it. */
export interface KubeEvent {
  /** Its name and namespace; the server adds `resourceVersion`. */
  metadata: { name: string; namespace: string; resourceVersion?: string };
  /** The object it is about. */
  involvedObject: {
    apiVersion: string;
    kind: string;
    name: string;
    namespace: string;
    uid?: string;
  };
  /** A CamelCase reason, like `ImageNotFound`. */
  reason: string;
  /** The sentence `kubectl describe` shows. */
  message: string;
  /** `Warning` or `Normal`. */
  type: "Warning" | "Normal";
  /** How many times it happened. */
  count: number;
  /** When it first happened (RFC 3339). */
  firstTimestamp: string;
  /** When it last happened (RFC 3339). */
  lastTimestamp: string;
  /** Who reports it, and on which node. */
  source: { component: string; host?: string };
  /** Who reports it. */
  reportingComponent: string;
  /** Which instance of it (the node). */
  reportingInstance: string;
}

/** Options for {@linkcode KubeClient}. */
export interface KubeClientOptions {
  /** Bound on each request in milliseconds. @default {10000} */
  requestTimeoutMs?: number;
}

/** Talks to one API server as the pod's service account. */
export class KubeClient implements NodeApi, Disposable {
  readonly #config: InClusterConfig;
  readonly #http: Deno.HttpClient;
  readonly #timeoutMs: number;

  /**
   * Creates a client trusting only the CA in `config.caFile`.
   *
   * @example Usage
   * ```ts
   * import { KubeClient } from "./kube_client.ts";
   * import { inClusterConfig } from "./in_cluster.ts";
   *
   * async function nodeLabels(node: string) {
   *   using client = await KubeClient.create(inClusterConfig());
   *   return (await client.getNode(node)).metadata.labels;
   * }
   * ```
   */
  static async create(
    config: InClusterConfig,
    options: KubeClientOptions = {},
  ): Promise<KubeClient> {
    let ca: string;
    try {
      ca = await Deno.readTextFile(config.caFile);
    } catch (error) {
      throw new KubeApiError(
        { verb: "read", resource: "CA", name: config.caFile },
        0,
        `cannot read the cluster CA ${config.caFile}: ${(error as Error).message}; mount the ` +
          "service account's ca.crt (deploy.ts does)",
      );
    }
    return new KubeClient(config, Deno.createHttpClient({ caCerts: [ca] }), options);
  }

  private constructor(config: InClusterConfig, http: Deno.HttpClient, options: KubeClientOptions) {
    this.#config = config;
    this.#http = http;
    this.#timeoutMs = options.requestTimeoutMs ?? 10_000;
  }

  /** Reads node `name`. */
  getNode(name: string, signal?: AbortSignal): Promise<KubeNode> {
    return this.#request(
      { verb: "get", resource: "nodes", name },
      "GET",
      undefined,
      undefined,
      signal,
    );
  }

  /** Patches node `name` with `body`, sent as `type`. */
  patchNode(name: string, type: PatchType, body: unknown, signal?: AbortSignal): Promise<KubeNode> {
    return this.#request({ verb: "patch", resource: "nodes", name }, "PATCH", type, body, signal);
  }

  /** Reads pod `name` of `namespace`. */
  getPod(namespace: string, name: string, signal?: AbortSignal): Promise<KubePod> {
    const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${
      encodeURIComponent(name)
    }`;
    const call = { verb: "get", resource: "pods", name: `${namespace}/${name}`, path };
    return this.#request(call, "GET", undefined, undefined, signal);
  }

  /**
   * Creates a review (`TokenReview` of `authentication.k8s.io/v1`, `SubjectAccessReview` of
   * `authorization.k8s.io/v1`) and returns the API's answer, whose `status` holds the verdict.
   */
  createReview<T>(
    kind: "TokenReview" | "SubjectAccessReview",
    spec: unknown,
    signal?: AbortSignal,
  ): Promise<{ status?: T }> {
    const group = kind === "TokenReview" ? "authentication.k8s.io" : "authorization.k8s.io";
    const resource = `${kind.toLowerCase()}s`;
    const call = {
      verb: "create",
      group,
      resource,
      name: "",
      path: `/apis/${group}/v1/${resource}`,
    };
    const body = { apiVersion: `${group}/v1`, kind, spec };
    return this.#request(call, "POST", "application/json", body, signal);
  }

  /** Creates `event` in `namespace` (core/v1 `Event`). */
  createEvent(namespace: string, event: KubeEvent, signal?: AbortSignal): Promise<KubeEvent> {
    const call = { verb: "create", resource: "events", name: event.metadata.name, namespace };
    return this.#request(call, "POST", "application/json", event, signal);
  }

  /** Patches event `name` in `namespace` with a JSON merge patch. */
  patchEvent(
    namespace: string,
    name: string,
    patch: unknown,
    signal?: AbortSignal,
  ): Promise<KubeEvent> {
    const call = { verb: "patch", resource: "events", name, namespace };
    return this.#request(call, "PATCH", "application/merge-patch+json", patch, signal);
  }

  /** Closes the HTTP client. */
  [Symbol.dispose](): void {
    this.#http.close();
  }

  async #request<T>(
    call: ApiCall,
    method: string,
    contentType: string | undefined,
    body: unknown,
    signal: AbortSignal | undefined,
  ): Promise<T> {
    const token = await this.#token(call);
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    let response: Response;
    try {
      response = await fetch(
        this.#url(call, method),
        {
          method,
          client: this.#http,
          headers: {
            Authorization: `Bearer ${token}`,
            Accept: "application/json",
            ...(contentType ? { "Content-Type": contentType } : {}),
          },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
        },
      );
    } catch (error) {
      throw new KubeApiError(call, 0, `${this.#config.server}: ${(error as Error).message}`);
    }
    const text = await response.text();
    if (response.ok) return JSON.parse(text) as T;
    const status = parseStatus(text);
    throw new KubeApiError(call, response.status, status.message, status.reason);
  }

  /** The object's URL (the collection's for a `POST`). */
  #url(call: ApiCall, method: string): string {
    if (call.path) return this.#config.server + call.path;
    const scope = call.namespace ? `namespaces/${encodeURIComponent(call.namespace)}/` : "";
    const collection = `${this.#config.server}/api/v1/${scope}${call.resource}`;
    return method === "POST" ? collection : `${collection}/${encodeURIComponent(call.name)}`;
  }

  async #token(call: ApiCall): Promise<string> {
    try {
      return (await Deno.readTextFile(this.#config.tokenFile)).trim();
    } catch (error) {
      throw new KubeApiError(
        call,
        0,
        `cannot read the service account token ${this.#config.tokenFile}: ` +
          `${(error as Error).message}; mount a service account token (deploy.ts does)`,
      );
    }
  }
}

/** The API's `Status` object's message and reason, or the start of a body that is not one. */
function parseStatus(text: string): { message: string; reason?: string } {
  try {
    const status = JSON.parse(text);
    if (typeof status?.message === "string") {
      return { message: status.message, reason: status.reason };
    }
  } catch {
    // Not JSON: a proxy's page, say.
  }
  return { message: text.slice(0, 200).replace(/\s+/g, " ") || "empty body" };
}
