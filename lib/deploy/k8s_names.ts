/**
 * The Kubernetes API's rules for object names, label keys and label values, as the API server
 * applies them (`k8s.io/apimachinery/pkg/util/validation`), so `deploy` rejects a bad name before
 * `kubectl apply` does, with a clearer message.
 *
 * @module
 */

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const QUALIFIED_NAME_PART = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

/** Whether `text` is an RFC 1123 label (namespaces): `[a-z0-9-]`, at most 63 characters. */
export function isDns1123Label(text: string): boolean {
  return text.length <= 63 && DNS1123_LABEL.test(text);
}

/**
 * Whether `text` is an RFC 1035 label (Service names): like an RFC 1123 label, but starting with
 * a letter.
 */
export function isDns1035Label(text: string): boolean {
  return text.length <= 63 && DNS1035_LABEL.test(text);
}

/**
 * Whether `text` is an RFC 1123 subdomain (most object names: Secrets, ConfigMaps,
 * PriorityClasses): dot-separated labels, at most 253 characters.
 */
export function isDns1123Subdomain(text: string): boolean {
  return text.length <= 253 && DNS1123_SUBDOMAIN.test(text);
}

/** Whether `text` is a valid label key: an optional `prefix/` (a subdomain) and a name. */
export function isLabelKey(text: string): boolean {
  const slash = text.lastIndexOf("/");
  const prefix = slash === -1 ? undefined : text.slice(0, slash);
  const name = slash === -1 ? text : text.slice(slash + 1);
  if (prefix !== undefined && !isDns1123Subdomain(prefix)) return false;
  return name.length <= 63 && QUALIFIED_NAME_PART.test(name);
}

/** Whether `text` is a valid label value: empty, or at most 63 of `[A-Za-z0-9-_.]`. */
export function isLabelValue(text: string): boolean {
  return text === "" || (text.length <= 63 && QUALIFIED_NAME_PART.test(text));
}
