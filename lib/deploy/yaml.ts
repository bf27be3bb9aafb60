/**
 * A small YAML emitter for manifests: JSON-like data (objects, arrays, strings, finite numbers,
 * booleans, null; anything else is a `TypeError`) in block style, as `kubectl get -o yaml`
 * writes it. Strings that a YAML 1.1 or 1.2 parser could read as anything but the same string
 * are double-quoted.
 *
 * @module
 */

/** Words that YAML 1.1 (still used by many tools) reads as booleans or null. */
const RESERVED_WORDS = new Set([
  "y",
  "n",
  "yes",
  "no",
  "on",
  "off",
  "true",
  "false",
  "null",
]);

/** A plain (unquoted) scalar: starts with a letter, `/` or `_`; no `:`, `#`, space or quote. */
const PLAIN = /^[A-Za-z_/][A-Za-z0-9_./-]*$/;

type Scalar = string | number | boolean | null;
type Collection = readonly unknown[] | Readonly<Record<string, unknown>>;

function scalar(value: Scalar): string {
  if (value === null) return "null";
  if (typeof value === "boolean") return String(value);
  if (typeof value === "number") {
    if (!Number.isFinite(value)) {
      throw new TypeError(`Cannot write ${value} in a manifest: use a finite number.`);
    }
    return String(value);
  }
  return PLAIN.test(value) && !RESERVED_WORDS.has(value.toLowerCase())
    ? value
    : JSON.stringify(value); // A JSON string is a valid YAML double-quoted scalar.
}

function asScalar(value: unknown): Scalar {
  if (value === null || ["string", "number", "boolean"].includes(typeof value)) {
    return value as Scalar;
  }
  throw new TypeError(`Cannot write a ${typeof value} in a manifest: use JSON-like data.`);
}

function isCollection(value: unknown): value is Collection {
  return typeof value === "object" && value !== null;
}

function emptyCollection(value: Collection): string | undefined {
  if (Array.isArray(value)) return value.length === 0 ? "[]" : undefined;
  return Object.keys(value).length === 0 ? "{}" : undefined;
}

function emit(value: unknown, indent: number): string[] {
  const pad = " ".repeat(indent);
  if (!isCollection(value)) return [pad + scalar(asScalar(value))];
  if (Array.isArray(value)) {
    return value.flatMap((item: unknown) => {
      if (!isCollection(item)) return [`${pad}- ${scalar(asScalar(item))}`];
      const empty = emptyCollection(item);
      if (empty !== undefined) return [`${pad}- ${empty}`];
      // The item's first line takes the "- " in place of its indentation.
      const [first, ...rest] = emit(item, indent + 2);
      return [`${pad}- ${first.slice(indent + 2)}`, ...rest];
    });
  }
  return Object.entries(value).flatMap(([key, item]) => {
    if (item === undefined) return [];
    const k = scalar(key);
    if (!isCollection(item)) return [`${pad}${k}: ${scalar(asScalar(item))}`];
    const empty = emptyCollection(item);
    if (empty !== undefined) return [`${pad}${k}: ${empty}`];
    return [`${pad}${k}:`, ...emit(item, indent + 2)];
  });
}

/**
 * Writes `documents` as one YAML stream, each document after a `---` line. Object keys keep
 * their order; keys whose value is `undefined` are left out.
 *
 * @example Usage
 * ```ts
 * import { toYamlDocuments } from "./yaml.ts";
 *
 * toYamlDocuments([{ kind: "ConfigMap", data: { "images.txt": "debian:12\n" } }]);
 * // '---\nkind: ConfigMap\ndata:\n  images.txt: "debian:12\\n"\n'
 * ```
 */
export function toYamlDocuments(documents: readonly unknown[]): string {
  return documents.map((document) => ["---", ...emit(document, 0)].join("\n") + "\n").join("");
}
