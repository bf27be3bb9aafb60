/**
 * Runs one credential provider plugin for one image, as the kubelet does: the executable
 * `<bin dir>/<name>` with the config's `args`, the inherited environment plus the config's `env`,
 * the request on standard input, the response from standard output, and a bound on the call.
 *
 * @module
 */
import type { CredentialProvider } from "./provider_config.ts";
import { encodeRequest, parseResponse, type ProviderResponse } from "./provider_response.ts";
import { formatDuration } from "../core/duration.ts";

/** Options for {@linkcode execPlugin}. */
export interface ExecPluginOptions {
  /** Directory holding the plugin executables. */
  binDir: string;
  /** Kill the plugin and give up after this many milliseconds. @default {60000, the kubelet's} */
  timeoutMs?: number;
  /** Stops the call early. */
  signal?: AbortSignal;
}

/** A plugin call that gave no usable answer; the message never quotes standard output. */
export class PluginCallError extends Error {
  /** True when the plugin was killed for taking longer than the timeout. */
  readonly timedOut: boolean;

  /** Creates the error with a sentence a user can act on. */
  constructor(message: string, options: { timedOut?: boolean } = {}) {
    super(message);
    this.name = "PluginCallError";
    this.timedOut = options.timedOut ?? false;
  }
}

/** Longest piece of a plugin's standard error quoted in a {@linkcode PluginCallError}. */
const STDERR_QUOTE = 300;

/**
 * Runs `provider` for `image` and returns its checked response.
 *
 * @example Usage
 * ```ts
 * import { execPlugin } from "./exec_plugin.ts";
 * import type { CredentialProvider } from "./provider_config.ts";
 *
 * async function credentialsForApp(provider: CredentialProvider) {
 *   return await execPlugin(provider, "gcr.io/project/app", { binDir: "/usr/local/bin" });
 * }
 * ```
 *
 * @param provider The provider from the config.
 * @param image The image repository the credentials are for.
 * @param options Where the executables are, and the bound on the call.
 * @returns The response.
 * @throws {PluginCallError} When the plugin cannot start, fails, hangs, or prints no response.
 */
export async function execPlugin(
  provider: CredentialProvider,
  image: string,
  options: ExecPluginOptions,
): Promise<ProviderResponse> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const path = `${options.binDir.replace(/\/+$/, "")}/${provider.name}`;
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(path, {
      args: provider.args,
      env: Object.fromEntries(provider.env.map((v) => [v.name, v.value])),
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    throw new PluginCallError(startFailure(path, error));
  }
  const output = await withDeadline(
    child,
    talk(child, encodeRequest(image, provider.apiVersion)),
    timeoutMs,
    options.signal,
  );
  if (!output.success) {
    const stderr = new TextDecoder().decode(output.stderr).trim();
    const why = output.signal ? `was killed by ${output.signal}` : `exited with ${output.code}`;
    throw new PluginCallError(
      `${why}${stderr ? `: ${stderr.slice(-STDERR_QUOTE).replace(/\s+/g, " ")}` : ""}`,
    );
  }
  try {
    return parseResponse(new TextDecoder().decode(output.stdout), provider.apiVersion);
  } catch (error) {
    throw new PluginCallError((error as Error).message);
  }
}

/**
 * Waits for `output`, or kills the plugin (SIGKILL: a hung plugin may ignore SIGTERM) when the
 * time is up or `signal` aborts. Does not wait for pipes a killed plugin's children may hold.
 */
async function withDeadline(
  child: Deno.ChildProcess,
  output: Promise<Deno.CommandOutput>,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<Deno.CommandOutput> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort: (() => void) | undefined;
  const stopped = new Promise<never>((_, reject) => {
    const stop = (why: string, timedOut = false) => {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already exited.
      }
      reject(new PluginCallError(why, { timedOut }));
    };
    timer = setTimeout(
      () => stop(`gave no answer within ${formatDuration(timeoutMs)} and was killed`, true),
      timeoutMs,
    );
    onAbort = () => stop("was stopped: the run is ending");
    if (signal?.aborted) onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([output, stopped]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener("abort", onAbort);
    output.catch(() => {});
  }
}

/** Writes the request, closes standard input, and waits for the plugin to exit. */
async function talk(child: Deno.ChildProcess, request: string): Promise<Deno.CommandOutput> {
  const writer = child.stdin.getWriter();
  // A plugin that exits without reading its input closes the pipe; its exit status says why.
  await writer.write(new TextEncoder().encode(request)).catch(() => {});
  await writer.close().catch(() => {});
  return await child.output();
}

function startFailure(path: string, error: unknown): string {
  if (error instanceof Deno.errors.NotFound) {
    return `cannot be started: ${path} does not exist; put the plugin there or fix ` +
      "--image-credential-provider-bin-dir and the provider's name";
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return `cannot be started: ${path} is not executable (chmod +x it)`;
  }
  if (error instanceof Deno.errors.NotCapable) {
    return `cannot be started: this program may not run ${path} (run it with --allow-run)`;
  }
  return `cannot be started: ${path}: ${(error as Error).message}`;
}
