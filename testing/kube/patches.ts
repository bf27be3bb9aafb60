/**
 * JSON merge patches (RFC 7386) and JSON patches (RFC 6902), applied as the Kubernetes API server
 * applies them to an object, for the test API server. Strategic merge patches of labels behave as
 * merge patches, which is all the test server needs of them.
 *
 * @module
 */

/** A patch that cannot be applied: 400 for a malformed patch, 422 for one that does not apply. */
export class PatchError extends Error {
  /** The HTTP status the API server answers with. */
  readonly code: 400 | 422;

  /** Creates the error. */
  constructor(code: 400 | 422, message: string) {
    super(message);
    this.name = "PatchError";
    this.code = code;
  }
}

// deno-lint-ignore no-explicit-any
type Json = any;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Applies a JSON merge patch to a copy of `target`. */
export function applyMergePatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) {
    throw new PatchError(400, "a merge patch must be a JSON object");
  }
  return merge(structuredClone(target), patch);
}

function merge(target: Json, patch: Json): Json {
  if (!isObject(patch)) return structuredClone(patch);
  const result = isObject(target) ? target : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = merge(result[key], value);
  }
  return result;
}

/** Applies a JSON patch (add, remove, replace, test) to a copy of `target`. */
export function applyJsonPatch(target: Json, patch: Json): Json {
  if (!Array.isArray(patch)) {
    throw new PatchError(
      400,
      "json: cannot unmarshal object into Go value of type jsonpatch.Patch",
    );
  }
  const doc = structuredClone(target);
  for (const operation of patch) {
    if (!isObject(operation) || typeof operation.path !== "string") {
      throw new PatchError(400, `invalid JSON patch operation ${JSON.stringify(operation)}`);
    }
    const path = parsePointer(operation.path);
    switch (operation.op) {
      case "test": {
        const actual = get(doc, path);
        if (JSON.stringify(canonical(actual)) !== JSON.stringify(canonical(operation.value))) {
          throw new PatchError(422, `testing value ${operation.path} failed: test failed`);
        }
        break;
      }
      case "remove":
        remove(doc, path, operation.path);
        break;
      case "add":
      case "replace":
        if (!("value" in operation)) {
          throw new PatchError(400, `operation ${operation.op} needs a value`);
        }
        set(doc, path, operation.value, operation.op, operation.path);
        break;
      default:
        throw new PatchError(400, `unsupported JSON patch op ${JSON.stringify(operation.op)}`);
    }
  }
  return doc;
}

/** Sorts object keys so equal JSON values compare equal as text. */
function canonical(value: Json): Json {
  if (Array.isArray(value)) return value.map(canonical);
  if (isObject(value)) {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, canonical(value[k])]));
  }
  return value;
}

function parsePointer(pointer: string): string[] {
  if (pointer === "") return [];
  if (!pointer.startsWith("/")) throw new PatchError(400, `bad JSON pointer ${pointer}`);
  return pointer.slice(1).split("/").map((p) => p.replaceAll("~1", "/").replaceAll("~0", "~"));
}

function get(doc: Json, path: string[]): Json {
  let node = doc;
  for (const part of path) {
    if (node === undefined || node === null) return undefined;
    node = Array.isArray(node) ? node[Number(part)] : node[part];
  }
  return node;
}

function parentOf(doc: Json, path: string[], pointer: string): Json {
  const parent = get(doc, path.slice(0, -1));
  if (typeof parent !== "object" || parent === null) {
    throw new PatchError(422, `the parent of ${pointer} does not exist`);
  }
  return parent;
}

function remove(doc: Json, path: string[], pointer: string): void {
  const parent = parentOf(doc, path, pointer);
  const last = path[path.length - 1];
  if (Array.isArray(parent)) {
    const index = Number(last);
    if (!Number.isInteger(index) || index < 0 || index >= parent.length) {
      throw new PatchError(422, `unable to remove nonexistent key ${pointer}`);
    }
    parent.splice(index, 1);
  } else {
    if (!(last in parent)) throw new PatchError(422, `unable to remove nonexistent key ${pointer}`);
    delete parent[last];
  }
}

function set(doc: Json, path: string[], value: Json, op: string, pointer: string): void {
  const parent = parentOf(doc, path, pointer);
  const last = path[path.length - 1];
  if (Array.isArray(parent)) {
    const index = last === "-" ? parent.length : Number(last);
    if (!Number.isInteger(index) || index < 0 || index > parent.length) {
      throw new PatchError(422, `${op}: index ${last} out of range`);
    }
    if (op === "add") parent.splice(index, 0, value);
    else if (index === parent.length) throw new PatchError(422, `replace: index out of range`);
    else parent[index] = value;
  } else {
    if (op === "replace" && !(last in parent)) {
      throw new PatchError(422, `replace operation does not apply: doc is missing key: ${pointer}`);
    }
    parent[last] = value;
  }
}
