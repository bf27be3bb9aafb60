/**
 * The one permission the shipped binary holds only for credential provider plugins: starting
 * programs. Deno can scope `--allow-run` to named executables but not to a directory (checked
 * with Deno 2.9.6: `--allow-run=/dir` refuses `/dir/plugin`), and plugin names come from the
 * node's config at run time, so the binary is compiled with `--allow-run` and every process
 * that has no plugin to run gives the permission up as soon as it knows.
 *
 * @module
 */

/**
 * Revokes the permission to start programs for the rest of the process, so that nothing it
 * loads later can use it. Safe to call when the permission was never granted.
 *
 * @example Usage
 * ```ts
 * import { dropRunPermission } from "./run_permission.ts";
 *
 * function startWithoutPlugins() {
 *   dropRunPermission();
 * }
 * ```
 */
export function dropRunPermission(): void {
  Deno.permissions.revokeSync({ name: "run" });
}
