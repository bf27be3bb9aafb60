/**
 * Runs the real `image-prefetcher aggregate-metrics` as a subprocess (through `main.ts`, with the
 * shipped binary's permission flags) for end-to-end tests and benchmarks.
 *
 * @module
 */
import { freePort } from "./stack/free_port.ts";
import { waitUntil } from "./stack/wait_until.ts";
import { PERMISSION_FLAGS } from "./prefetcher_process.ts";

const ROOT = new URL("../", import.meta.url);

/** Options for {@linkcode startMetricsServerProcess}. */
export interface MetricsServerProcessOptions {
  /** @default a free port */
  grpcPort?: number;
  /** @default a free port */
  httpPort?: number;
  /** More flags, e.g. `--max-results`. */
  args?: string[];
  /** Extra environment variables, e.g. `MALLOC_PERTURB_`. */
  env?: Record<string, string>;
}

/** A running `aggregate-metrics` process. */
export interface MetricsServerProcess extends AsyncDisposable {
  /** The child process. */
  readonly process: Deno.ChildProcess;
  /** Its gRPC port. */
  readonly grpcPort: number;
  /** Its HTTP port. */
  readonly httpPort: number;
  /** `http://127.0.0.1:<httpPort>`. */
  readonly url: string;
  /** Everything it wrote to standard error so far. */
  stderr(): string;
  /** Sends a signal and waits for the exit status. */
  stop(signal?: Deno.Signal): Promise<Deno.CommandStatus>;
}

/** Thrown when the server did not answer `/healthz` in time. */
export class MetricsServerProcessError extends Error {
  /** Creates the error quoting the process's logs. */
  constructor(logs: string) {
    super(`aggregate-metrics did not start within 30s; its logs:\n${logs}`);
    this.name = "MetricsServerProcessError";
  }
}

/** Starts the server and waits until it answers `/healthz`. */
export async function startMetricsServerProcess(
  options: MetricsServerProcessOptions = {},
): Promise<MetricsServerProcess> {
  const grpcPort = options.grpcPort ?? freePort();
  const httpPort = options.httpPort ?? freePort();
  const process = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      ...PERMISSION_FLAGS,
      new URL("main.ts", ROOT).pathname,
      "aggregate-metrics",
      "--grpc-port",
      String(grpcPort),
      "--http-port",
      String(httpPort),
      "--log-format",
      "json",
      ...(options.args ?? []),
    ],
    cwd: ROOT.pathname,
    env: options.env,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let logs = "";
  const decoder = new TextDecoder();
  const reading = (async () => {
    for await (const chunk of process.stderr) logs += decoder.decode(chunk, { stream: true });
  })();
  let exited = false;
  const status = process.status.then((s) => (exited = true, s));
  const url = `http://127.0.0.1:${httpPort}`;
  const ready = await waitUntil(async () => {
    const response = await fetch(`${url}/healthz`);
    await response.body?.cancel();
    return response.ok;
  }, { timeoutMs: 30_000, intervalMs: 100, abandon: () => exited });
  const stop = async (signal: Deno.Signal = "SIGTERM") => {
    if (!exited) {
      try {
        process.kill(signal);
      } catch { /* already gone */ }
    }
    const result = await status;
    await reading;
    return result;
  };
  if (!ready) {
    await stop("SIGKILL");
    throw new MetricsServerProcessError(logs);
  }
  return {
    process,
    grpcPort,
    httpPort,
    url,
    stderr: () => logs,
    stop,
    [Symbol.asyncDispose]: async () => {
      await stop("SIGKILL");
    },
  };
}
