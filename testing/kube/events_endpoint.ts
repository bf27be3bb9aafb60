/**
 * The test API server's core/v1 Events in a namespace, held to the API's contract for the calls
 * this program makes: `POST /api/v1/namespaces/{ns}/events` (create: 201, or 409 AlreadyExists,
 * 422 for a missing field or a namespace that differs from the path's) and
 * `PATCH /api/v1/namespaces/{ns}/events/{name}` (JSON merge patch only here: 404, 409 when a
 * `metadata.resourceVersion` in the patch is not the stored one, 415). RBAC: the verbs in
 * `grants` (`create`, `patch`), checked before anything else.
 *
 * @module
 */
import { applyMergePatch, PatchError } from "./patches.ts";

/** An Event as stored. */
// deno-lint-ignore no-explicit-any
export type StoredEvent = Record<string, any>;

/** What the endpoint keeps. */
export interface EventsState {
  /** Events by `<namespace>/<name>`. */
  events: Map<string, StoredEvent>;
  /** The verbs on events the token's ServiceAccount has. */
  grants: Set<string>;
  /** The next resourceVersion. */
  nextVersion: () => string;
}

const PATH = /^\/api\/v1\/namespaces\/([^/]+)\/events(?:\/([^/]+))?$/;

/** Whether `path` is this endpoint's. */
export function isEventsPath(path: string): boolean {
  return PATH.test(path);
}

/** Answers one request to the endpoint; `status` builds the API's `Status` failures. */
export async function handleEvents(
  request: Request,
  state: EventsState,
  status: (code: number, reason: string, message: string) => Response,
): Promise<Response> {
  const [, namespace, rawName] = new URL(request.url).pathname.match(PATH)!;
  const name = rawName === undefined ? undefined : decodeURIComponent(rawName);
  const verb = request.method === "POST" && name === undefined
    ? "create"
    : request.method === "PATCH" && name !== undefined
    ? "patch"
    : undefined;
  if (!verb) return status(405, "MethodNotAllowed", `${request.method} is not supported here`);
  if (!state.grants.has(verb)) {
    return status(
      403,
      "Forbidden",
      `events is forbidden: User "system:serviceaccount:${namespace}:prefetch" cannot ${verb} ` +
        `resource "events" in API group "" in the namespace "${namespace}"`,
    );
  }
  let body: unknown;
  try {
    body = JSON.parse(await request.text());
  } catch (error) {
    return status(400, "BadRequest", `error decoding body: ${(error as Error).message}`);
  }
  return verb === "create"
    ? create(namespace, body as StoredEvent, state, status)
    : patch(request, namespace, name!, body, state, status);
}

function create(
  namespace: string,
  event: StoredEvent,
  state: EventsState,
  status: (code: number, reason: string, message: string) => Response,
): Response {
  const name = event?.metadata?.name;
  const invalid = validateEvent(event, namespace);
  if (invalid) return status(422, "Invalid", `Event "${name}" is invalid: ${invalid}`);
  const key = `${namespace}/${name}`;
  if (state.events.has(key)) {
    return status(409, "AlreadyExists", `events "${name}" already exists`);
  }
  const stored = structuredClone(event);
  stored.metadata.resourceVersion = state.nextVersion();
  state.events.set(key, stored);
  return Response.json(stored, { status: 201 });
}

function patch(
  request: Request,
  namespace: string,
  name: string,
  body: unknown,
  state: EventsState,
  status: (code: number, reason: string, message: string) => Response,
): Response {
  const type = (request.headers.get("content-type") ?? "").split(";")[0].trim();
  if (type !== "application/merge-patch+json") {
    return status(415, "UnsupportedMediaType", `the body of the request was in an unknown format`);
  }
  const key = `${namespace}/${name}`;
  const current = state.events.get(key);
  if (!current) return status(404, "NotFound", `events "${name}" not found`);
  let patched: StoredEvent;
  try {
    patched = applyMergePatch(current, body) as StoredEvent;
  } catch (error) {
    if (!(error instanceof PatchError)) throw error;
    return status(error.code, "BadRequest", error.message);
  }
  if (patched.metadata?.resourceVersion !== current.metadata.resourceVersion) {
    return status(
      409,
      "Conflict",
      `Operation cannot be fulfilled on events "${name}": the object has been modified; ` +
        "please apply your changes to the latest version and try again",
    );
  }
  const invalid = validateEvent(patched, namespace);
  if (invalid) return status(422, "Invalid", `Event "${name}" is invalid: ${invalid}`);
  patched.metadata.resourceVersion = state.nextVersion();
  state.events.set(key, patched);
  return Response.json(patched);
}

/** The API server's validation of an Event's fields that this program sets. */
function validateEvent(event: StoredEvent, namespace: string): string | undefined {
  if (typeof event?.metadata?.name !== "string" || event.metadata.name.length > 253) {
    return "metadata.name: Required value";
  }
  if (event.metadata.namespace !== namespace) {
    return "metadata.namespace: Invalid value: does not match the namespace of the request";
  }
  const involved = event.involvedObject;
  if (!involved?.kind || !involved?.name || involved.namespace !== namespace) {
    return "involvedObject: Invalid value: kind, name and the event's namespace are required";
  }
  if (typeof event.reason !== "string" || event.reason === "") return "reason: Required value";
  if (!["Normal", "Warning"].includes(event.type)) return "type: Unsupported value";
  if (!event.reportingComponent || !event.reportingInstance) {
    return "reportingController: Required value";
  }
  return undefined;
}
