/**
 * A test Kubernetes API server for the calls on nodes this program makes: HTTPS with its own CA,
 * bearer tokens checked, RBAC verbs enforced from a list of grants, and every request held to the
 * API's contract (method, path, content type, body; patches applied as the API server applies
 * them, with the answers it gives: 401, 403, 404, 409, 415, 422 and the 5xx a test asks for).
 *
 * Only `GET` and `PATCH` of `/api/v1/nodes/{name}`, `GET` of `/api/v1/namespaces/{ns}/pods/{name}`,
 * `POST` of TokenReviews and SubjectAccessReviews (answered by `token_authority.ts`, which also
 * issues the bound tokens they review), and the create and patch of Events in a namespace
 * (`events_endpoint.ts`) exist; anything else is a 404 or 405, so a call the program should not
 * make fails the test that makes it.
 *
 * @module
 */
import { makeTestCertificates } from "./test_ca.ts";
import { applyJsonPatch, applyMergePatch, PatchError } from "./patches.ts";
import { TokenAuthority } from "./token_authority.ts";
import { handleEvents, isEventsPath, type StoredEvent } from "./events_endpoint.ts";

/**
 * The grants a test server gives its token unless told otherwise: `get` and `patch` on nodes
 * (plain verbs, as before), and the other calls as `<verb> <resource>`.
 */
export const DEFAULT_GRANTS = [
  "get",
  "patch",
  "create tokenreviews",
  "create subjectaccessreviews",
  "get pods",
];

/** One request as the server saw it. */
export interface ApiRequest {
  /** HTTP method. */
  method: string;
  /** Path. */
  path: string;
  /** The RBAC verb it needs (`get`, `patch`). */
  verb: string;
  /** `Content-Type`, if any. */
  contentType?: string;
  /** Parsed JSON body, if any. */
  body?: unknown;
  /** The status answered. */
  status: number;
}

/** A node as stored. */
// deno-lint-ignore no-explicit-any
export type StoredNode = Record<string, any>;

/** A running server; stop it with `await using`. */
export interface TestApiServer extends AsyncDisposable {
  /** `https://127.0.0.1:<port>`. */
  readonly url: string;
  /** Host and port, for `KUBERNETES_SERVICE_HOST` and `_PORT`. */
  readonly host: string;
  /** The port. */
  readonly port: number;
  /** The CA certificate (PEM) clients must trust. */
  readonly caCert: string;
  /** The only token accepted; change it to simulate a rotation. */
  token: string;
  /** Verbs on nodes the token's ServiceAccount has (RBAC). */
  grants: Set<string>;
  /** Nodes by name. */
  readonly nodes: Map<string, StoredNode>;
  /** Pods by `<namespace>/<name>`. */
  readonly pods: Map<string, StoredNode>;
  /** Issues bound tokens and answers reviews of them. */
  readonly tokens: TokenAuthority;
  /** Events by `<namespace>/<name>`. */
  readonly events: Map<string, StoredEvent>;
  /** Verbs on events (in any namespace) the token's ServiceAccount has. */
  eventGrants: Set<string>;
  /** Every request, in order. */
  readonly requests: ApiRequest[];
  /** Answers the next requests with these statuses, one each, before anything else. */
  failNext(...statuses: number[]): void;
  /** Calls `change` on the stored node right before the next PATCH is applied (a race). */
  beforeNextPatch(change: (node: StoredNode) => void): void;
}

const PATCH_TYPES = [
  "application/json-patch+json",
  "application/merge-patch+json",
  "application/strategic-merge-patch+json",
];

/** The `Status` object the API server answers failures with. */
function status(code: number, reason: string, message: string, name?: string): Response {
  return Response.json({
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason,
    ...(name ? { details: { name, kind: "nodes" } } : {}),
    code,
  }, { status: code });
}

const REASONS: Record<number, string> = {
  409: "Conflict",
  429: "TooManyRequests",
  500: "InternalError",
  502: "",
  503: "ServiceUnavailable",
  504: "Timeout",
};

/** Starts the server on a free port of 127.0.0.1 with a new CA. */
export async function startTestApiServer(
  options: {
    token?: string;
    grants?: string[];
    eventGrants?: string[];
    nodes?: StoredNode[];
    user?: string;
  } = {},
): Promise<TestApiServer> {
  const certs = await makeTestCertificates();
  const failures: number[] = [];
  let race: ((node: StoredNode) => void) | undefined;
  const user = options.user ?? "system:serviceaccount:prefetch:my-images";
  let resourceVersion = 1000;
  const state = {
    token: options.token ?? "test-token-1",
    grants: new Set(options.grants ?? DEFAULT_GRANTS),
    nodes: new Map(
      (options.nodes ?? []).map((n) => [n.metadata.name as string, structuredClone(n)]),
    ),
    requests: [] as ApiRequest[],
    pods: new Map<string, StoredNode>(),
    tokens: new TokenAuthority(),
    events: new Map<string, StoredEvent>(),
    eventGrants: new Set(options.eventGrants ?? ["create", "patch"]),
  };
  for (const node of state.nodes.values()) node.metadata.resourceVersion = String(resourceVersion);

  async function handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const match = url.pathname.match(/^\/api\/v1\/nodes\/([^/]+)$/);
    const verb = request.method === "GET" ? "get" : request.method === "PATCH" ? "patch" : "";
    if (request.headers.get("authorization") !== `Bearer ${state.token}`) {
      return status(401, "Unauthorized", "Unauthorized");
    }
    const forced = failures.shift();
    if (forced !== undefined) {
      return forced === 502
        ? new Response("<html>Bad Gateway</html>", { status: 502 })
        : status(forced, REASONS[forced] ?? "InternalError", `forced ${forced} by the test`);
    }
    if (isEventsPath(url.pathname)) {
      return await handleEvents(request, {
        events: state.events,
        grants: state.eventGrants,
        nextVersion: () => String(++resourceVersion),
      }, status);
    }
    const other = await otherCall(request, url);
    if (other) return other;
    if (!match) return status(404, "NotFound", "the server could not find the requested resource");
    const name = decodeURIComponent(match[1]);
    if (!verb) return status(405, "MethodNotAllowed", `${request.method} is not supported`);
    if (!state.grants.has(verb)) {
      return status(
        403,
        "Forbidden",
        `nodes "${name}" is forbidden: User "${user}" cannot ${verb} resource "nodes" in API ` +
          `group "" at the cluster scope`,
        name,
      );
    }
    const node = state.nodes.get(name);
    if (!node) return status(404, "NotFound", `nodes "${name}" not found`, name);
    if (verb === "get") return Response.json(node);
    return await patch(request, name, node);
  }

  /** Reviews and pods: the answer, or undefined for a path that is not one of theirs. */
  async function otherCall(request: Request, url: URL): Promise<Response | undefined> {
    const review = url.pathname.match(
      /^\/apis\/(authentication|authorization)\.k8s\.io\/v1\/(tokenreviews|subjectaccessreviews)$/,
    );
    const pod = url.pathname.match(/^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)$/);
    if (!review && !pod) return undefined;
    const verb = review ? "create" : "get";
    const resource = review ? review[2] : "pods";
    if (request.method !== (review ? "POST" : "GET")) {
      return status(405, "MethodNotAllowed", `${request.method} is not supported`);
    }
    if (!state.grants.has(`${verb} ${resource}`)) {
      return status(
        403,
        "Forbidden",
        `${resource} is forbidden: User "${user}" cannot ${verb} resource "${resource}"`,
      );
    }
    if (pod) {
      const key = `${decodeURIComponent(pod[1])}/${decodeURIComponent(pod[2])}`;
      const found = state.pods.get(key);
      return found
        ? Response.json(found)
        : status(404, "NotFound", `pods "${pod[2]}" not found`, pod[2]);
    }
    return await answerReview(request, review![1], review![2]);
  }

  async function answerReview(request: Request, group: string, resource: string) {
    const kind = resource === "tokenreviews" ? "TokenReview" : "SubjectAccessReview";
    let body;
    try {
      body = JSON.parse(await request.text());
    } catch (error) {
      return status(400, "BadRequest", `error decoding body: ${(error as Error).message}`);
    }
    if (body?.apiVersion !== `${group}.k8s.io/v1` || body?.kind !== kind || !body.spec) {
      return status(400, "BadRequest", `the body is not a ${group}.k8s.io/v1 ${kind} with a spec`);
    }
    const answer = kind === "TokenReview"
      ? state.tokens.tokenReview(body.spec)
      : state.tokens.accessReview(body.spec);
    return Response.json({ ...body, metadata: {}, status: answer }, { status: 201 });
  }

  async function patch(request: Request, name: string, node: StoredNode): Promise<Response> {
    const type = (request.headers.get("content-type") ?? "").split(";")[0].trim();
    if (!PATCH_TYPES.includes(type)) {
      return status(
        415,
        "UnsupportedMediaType",
        `the body of the request was in an unknown format - accepted media types include: ` +
          `${PATCH_TYPES.join(", ")}, application/apply-patch+yaml`,
      );
    }
    let body: unknown;
    try {
      body = JSON.parse(await request.text());
    } catch (error) {
      return status(400, "BadRequest", `error decoding patch: ${(error as Error).message}`);
    }
    if (race) {
      race(node);
      node.metadata.resourceVersion = String(++resourceVersion);
      race = undefined;
    }
    let patched: StoredNode;
    try {
      patched = type === "application/json-patch+json"
        ? applyJsonPatch(node, body)
        : applyMergePatch(node, body);
    } catch (error) {
      if (!(error instanceof PatchError)) throw error;
      return status(error.code, error.code === 422 ? "Invalid" : "BadRequest", error.message, name);
    }
    const sentVersion = patched.metadata?.resourceVersion;
    if (sentVersion !== node.metadata.resourceVersion) {
      return status(
        409,
        "Conflict",
        `Operation cannot be fulfilled on nodes "${name}": the object has been modified; ` +
          "please apply your changes to the latest version and try again",
        name,
      );
    }
    const invalid = validateNode(patched);
    if (invalid) return status(422, "Invalid", `Node "${name}" is invalid: ${invalid}`, name);
    patched.metadata.resourceVersion = String(++resourceVersion);
    state.nodes.set(name, patched);
    return Response.json(patched);
  }

  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: certs.cert,
    key: certs.key,
    onListen: () => {},
  }, async (request) => {
    const url = new URL(request.url);
    const contentType = request.headers.get("content-type") ?? undefined;
    const text = await request.clone().text();
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = text;
    }
    const response = await handle(request);
    state.requests.push({
      method: request.method,
      path: url.pathname,
      verb: request.method === "GET"
        ? "get"
        : request.method === "POST"
        ? "create"
        : request.method.toLowerCase(),
      contentType,
      body,
      status: response.status,
    });
    return response;
  });
  const port = server.addr.port;
  return {
    url: `https://127.0.0.1:${port}`,
    host: "127.0.0.1",
    port,
    caCert: certs.caCert,
    get token() {
      return state.token;
    },
    set token(value: string) {
      state.token = value;
    },
    get grants() {
      return state.grants;
    },
    set grants(value: Set<string>) {
      state.grants = value;
    },
    nodes: state.nodes,
    pods: state.pods,
    tokens: state.tokens,
    events: state.events,
    get eventGrants() {
      return state.eventGrants;
    },
    set eventGrants(value: Set<string>) {
      state.eventGrants = value;
    },
    requests: state.requests,
    failNext: (...statuses) => failures.push(...statuses),
    beforeNextPatch: (change) => race = change,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"];

/** The API server's validation of the fields this program changes. */
function validateNode(node: StoredNode): string | undefined {
  for (const [key, value] of Object.entries(node.metadata?.labels ?? {})) {
    const [prefix, name] = key.includes("/") ? key.split("/", 2) : [undefined, key];
    if (
      !LABEL_NAME.test(name) || name.length > 63 || (prefix !== undefined && prefix.length > 253)
    ) {
      return `metadata.labels: Invalid value: "${key}": name part must consist of alphanumeric characters`;
    }
    if (typeof value !== "string" || value.length > 63 || !LABEL_VALUE.test(value)) {
      return `metadata.labels: Invalid value: ${JSON.stringify(value)}: a valid label must be ` +
        "an empty string or consist of alphanumeric characters";
    }
  }
  const taints = node.spec?.taints ?? [];
  if (!Array.isArray(taints)) return "spec.taints: Invalid value: must be a list";
  for (const taint of taints) {
    if (typeof taint?.key !== "string" || !EFFECTS.includes(taint.effect)) {
      return `spec.taints: Invalid value: ${JSON.stringify(taint)}`;
    }
  }
  return undefined;
}
