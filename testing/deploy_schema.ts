/**
 * Validates Kubernetes objects against the Kubernetes API schemas, as shipped by the
 * `kubernetes-models` npm package (generated from the Kubernetes OpenAPI), in two passes that
 * together reject what `kubectl apply` with strict field validation rejects:
 *
 * - {@linkcode schemaErrors}: the package's JSON-schema validators (ajv): wrong types, missing
 *   required fields, bad enums and formats. Like the API's OpenAPI schema, they allow unknown
 *   fields.
 * - {@linkcode unknownFieldErrors}: the same package's TypeScript interfaces, by type-checking
 *   each object as an object literal with `deno check`: TypeScript's excess-property check
 *   rejects every field the API does not define, at any depth (what `kubeconform -strict` does
 *   with "strict" schemas).
 *
 * Used by tests only; `deploy.ts` itself depends on none of this.
 *
 * @module
 */
import { DaemonSet } from "kubernetes-models/apps/v1/DaemonSet";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { ClusterRole } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole";
import { ClusterRoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding";
import { Role } from "kubernetes-models/rbac.authorization.k8s.io/v1/Role";
import { RoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding";
import { Service } from "kubernetes-models/v1/Service";
import { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import { Secret } from "kubernetes-models/v1/Secret";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import { ValidatingAdmissionPolicy } from "kubernetes-models/admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy";
import { ValidatingAdmissionPolicyBinding } from "kubernetes-models/admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding";

/** The package and version whose schemas and types are the reference. */
export const KUBERNETES_MODELS = "npm:kubernetes-models@5.1.0";

/** An object with the fields every Kubernetes object has. */
export interface ObjectToValidate {
  /** The API group and version, like `apps/v1`. */
  apiVersion: string;
  /** The kind, like `DaemonSet`. */
  kind: string;
  /** At least the name. */
  metadata: { name: string };
}

interface Validatable {
  validate(): void;
}

/** The model class of each `apiVersion/kind` that `deploy` writes. */
const MODELS: Record<string, new (data: never) => Validatable> = {
  "apps/v1/DaemonSet": DaemonSet,
  "apps/v1/Deployment": Deployment,
  "rbac.authorization.k8s.io/v1/ClusterRole": ClusterRole,
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding": ClusterRoleBinding,
  "rbac.authorization.k8s.io/v1/Role": Role,
  "rbac.authorization.k8s.io/v1/RoleBinding": RoleBinding,
  "v1/Service": Service,
  "v1/ServiceAccount": ServiceAccount,
  "v1/Secret": Secret,
  "networking.k8s.io/v1/NetworkPolicy": NetworkPolicy,
  "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy": ValidatingAdmissionPolicy,
  "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding":
    ValidatingAdmissionPolicyBinding,
};

function modelPath(object: ObjectToValidate): string {
  const path = `${object.apiVersion}/${object.kind}`;
  if (!Object.hasOwn(MODELS, path)) {
    throw new Error(`No schema for ${path}; add its kubernetes-models class to MODELS.`);
  }
  return path;
}

/** Returns the JSON-schema violations of `object` (empty when it is valid). */
export function schemaErrors(object: ObjectToValidate): string[] {
  const Model = MODELS[modelPath(object)];
  try {
    new Model(structuredClone(object) as never).validate();
    return [];
  } catch (error) {
    return [`${object.kind} ${object.metadata.name}: ${(error as Error).message}`];
  }
}

/**
 * Returns the fields of `objects` that their API types do not define, or that have the wrong
 * type, as TypeScript reports them (empty when there are none). One `deno check` for all.
 */
export async function unknownFieldErrors(objects: readonly ObjectToValidate[]): Promise<string[]> {
  const paths = objects.map(modelPath);
  const imports = [...new Set(paths)].map((path) =>
    `import type { I${path.split("/").at(-1)} } from "${KUBERNETES_MODELS}/${path}";`
  );
  // One object per line, so a diagnostic's line number names the object.
  const firstLine = imports.length + 1;
  const declarations = objects.map((object, i) =>
    `export const object${i}: I${object.kind} = ${JSON.stringify(object)};`
  );
  const dir = await Deno.makeTempDir({ prefix: "deploy_schema_" });
  try {
    const file = `${dir}/check.ts`;
    await Deno.writeTextFile(file, [...imports, ...declarations, ""].join("\n"));
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["check", "--no-config", "--quiet", file],
      cwd: dir,
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (output.success) return [];
    const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
    const errors = [
      ...text.matchAll(/(TS\d+) \[ERROR\]: ([\s\S]*?)\n\s*at file:\/\/\S+?:(\d+):\d+/g),
    ]
      .map(([, code, message, line]) => {
        const object = objects[Number(line) - firstLine];
        const what = object ? `${object.kind} ${object.metadata.name}` : `line ${line}`;
        return `${what}: ${code} ${message.trim()}`;
      });
    return errors.length > 0 ? errors : [text];
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Returns every violation of `objects`, by both passes (empty when they are all valid). */
export async function validationErrors(objects: readonly ObjectToValidate[]): Promise<string[]> {
  return [...objects.flatMap(schemaErrors), ...await unknownFieldErrors(objects)];
}
