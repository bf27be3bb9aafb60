/**
 * How `keep` starts a copy of itself for each cycle: the compiled binary runs itself; under
 * `deno run`, Deno runs `main.ts` again with the permissions this process holds.
 *
 * @module
 */

/** The program and arguments that run `image-prefetcher <args>` like this process runs. */
export function selfCommand(args: string[]): { command: string; args: string[] } {
  const command = Deno.execPath();
  const name = command.slice(command.lastIndexOf("/") + 1);
  if (name !== "deno" && name !== "deno.exe") return { command, args };
  const config = new URL("../../deno.json", import.meta.url).pathname;
  const main = new URL("../../main.ts", import.meta.url).pathname;
  return {
    command,
    args: ["run", "--quiet", "--no-prompt", "--config", config, ...grantedFlags(), main, ...args],
  };
}

/** The `--allow-*` flags of what this process may do (as `deno task compile` grants them). */
function grantedFlags(): string[] {
  const flags: string[] = [];
  for (const name of ["read", "write", "env", "net", "run"] as const) {
    if (Deno.permissions.querySync({ name }).state === "granted") flags.push(`--allow-${name}`);
  }
  if (Deno.permissions.querySync({ name: "sys", kind: "hostname" }).state === "granted") {
    flags.push("--allow-sys=hostname");
  }
  return flags;
}
