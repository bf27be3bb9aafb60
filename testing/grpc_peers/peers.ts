/**
 * gRPC peers we did not write, for the GOAWAY regression tests: Node.js `@grpc/grpc-js` programs
 * (on Node's own HTTP/2) and a Python `grpcio` client. Each is installed on first use: Node.js
 * and Debian's `python3-grpcio` with apt-get, grpc-js with `npm ci` from this folder's lockfile
 * into this folder's `node_modules` (not committed).
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { ensureDebianPackages } from "../stack/packages.ts";

const HERE = fileURLToPath(new URL("./", import.meta.url));

/** Thrown when `npm ci` fails; the message ends with its output. */
export class NpmInstallError extends Error {
  /** Builds the error quoting npm's `output`. */
  constructor(code: number, output: string) {
    super(
      `'npm ci' in ${HERE} failed with exit code ${code}; check that the npm registry is ` +
        `reachable and that package-lock.json matches package.json. Its output:\n${output}`,
    );
    this.name = "NpmInstallError";
  }
}

let installing: Promise<void> | undefined;

/** Installs Node.js (apt-get) and this folder's npm dependencies (`npm ci`) when missing. */
export function ensureNodePeers(): Promise<void> {
  return installing ??= (async () => {
    await ensureDebianPackages([{ name: "nodejs", binary: "node" }, {
      name: "npm",
      binary: "npm",
    }]);
    try {
      await Deno.stat(`${HERE}node_modules/@grpc/grpc-js/package.json`);
      return;
    } catch {
      // not installed yet
    }
    const output = await new Deno.Command("npm", {
      args: ["ci", "--no-audit", "--no-fund", "--ignore-scripts"],
      cwd: HERE,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!output.success) {
      const text = new TextDecoder().decode(output.stdout) +
        new TextDecoder().decode(output.stderr);
      throw new NpmInstallError(
        output.code,
        text.trimEnd().split("\n").slice(-30).join("\n"),
      );
    }
  })();
}

/** Installs Debian's `python3-grpcio` when `python3` cannot import `grpc`. */
export function ensurePythonPeer(): Promise<void> {
  return ensureDebianPackages([{
    name: "python3-grpcio",
    binary: "python3",
    pythonModule: "grpc",
  }]);
}

/** What a metrics client peer reports: the attempt ids it sent, by how its stream ended. */
export interface PeerSubmitReport {
  /** Ids in streams the server acknowledged. */
  acknowledged: string[];
  /** Ids in streams the client cancelled. */
  cancelled: string[];
  /** The results as sent, by the original's field names (the Python client says). */
  sent?: Array<Record<string, string | number>>;
}

/** A scenario of `metrics_client.mjs`; see that file. */
export type NodeMetricsScenario =
  | { kind: "one-call" }
  | { kind: "many-streams"; results: number; perStream: number }
  | { kind: "cancel" }
  | { kind: "churn"; connections: number };

/** Runs the Node.js metrics client against `target` (`host:port`) as node `node`. */
export async function runNodeMetricsClient(
  target: string,
  node: string,
  scenario: NodeMetricsScenario,
): Promise<PeerSubmitReport> {
  await ensureNodePeers();
  const extra = scenario.kind === "many-streams"
    ? [String(scenario.results), String(scenario.perStream)]
    : scenario.kind === "churn"
    ? [String(scenario.connections)]
    : [];
  return await runPeer("node", [
    `${HERE}metrics_client.mjs`,
    target,
    node,
    scenario.kind,
    ...extra,
  ]);
}

/** Runs the Python grpcio metrics client, which sends `results` results in one stream. */
export async function runPythonMetricsClient(
  target: string,
  node: string,
  results: number,
): Promise<PeerSubmitReport> {
  await ensurePythonPeer();
  // Debian's interpreter: the one python3-grpcio is installed for.
  return await runPeer("/usr/bin/python3", [
    `${HERE}metrics_client.py`,
    target,
    node,
    String(results),
  ]);
}

async function runPeer(
  program: string,
  args: string[],
): Promise<PeerSubmitReport> {
  const output = await new Deno.Command(program, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  const stderr = new TextDecoder().decode(output.stderr);
  if (!output.success) {
    throw new Error(
      `${program} ${args.join(" ")} failed (exit ${output.code}):\n${stderr}`,
    );
  }
  return JSON.parse(stdout.trim().split("\n").at(-1)!) as PeerSubmitReport;
}

/** What a graceful stop of the pass-through saw. */
export interface BounceReport {
  /** Calls in flight when the GOAWAY went out. */
  inFlight: number;
  /** When the GOAWAY went out, in milliseconds since the epoch. */
  goawayAt: number;
  /** How long the calls in flight took to finish after it. */
  drainedMs: number;
}

/** What the pass-through forwarded. */
export interface PassthroughStats {
  /** Calls forwarded so far, by method (`/runtime.v1.ImageService/PullImage`). */
  calls: Record<string, number>;
  /** Calls in flight now. */
  inFlight: number;
  /** Calls in flight now, by method. */
  inFlightBy: Record<string, number>;
}

/** A running `cri_passthrough.mjs`. */
export interface CriPassthrough extends AsyncDisposable {
  /** The socket it listens on; give it to `fetch --cri-socket`. */
  readonly socket: string;
  /**
   * Stops gracefully (a GOAWAY to every connection), lets calls in flight finish, stays away for
   * `downMs`, and listens again; with `whenIdle`, first waits until no call is in flight.
   */
  bounce(
    downMs: number,
    options?: { whenIdle?: boolean },
  ): Promise<{ inFlight: number }>;
  /** How many calls of each method it forwarded so far, and how many are in flight. */
  stats(): Promise<PassthroughStats>;
}

/** Starts the pass-through on `socket`, forwarding to the runtime socket `runtimeSocket`. */
export async function startCriPassthrough(
  socket: string,
  runtimeSocket: string,
): Promise<CriPassthrough> {
  await ensureNodePeers();
  const child = new Deno.Command("node", {
    args: [`${HERE}cri_passthrough.mjs`, socket, runtimeSocket],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const writer = child.stdin.getWriter();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(
    splitLines(),
  )
    .getReader();
  const next = async (event: string): Promise<Record<string, unknown>> => {
    while (true) {
      const { value, done } = await lines.read();
      if (done) {
        throw new Error(
          `cri_passthrough.mjs ended while we waited for "${event}"`,
        );
      }
      const parsed = JSON.parse(value);
      if (parsed.event === event) return parsed;
      if (parsed.event === "error") {
        throw new Error(`cri_passthrough.mjs: ${parsed.error}`);
      }
    }
  };
  const send = (line: string) => writer.write(new TextEncoder().encode(line + "\n"));
  await next("listening");
  return {
    socket,
    async bounce(downMs, options = {}) {
      await send(`${options.whenIdle ? "bounce-idle" : "bounce"} ${downMs}`);
      return await next("back") as unknown as BounceReport;
    },
    async stats() {
      await send("stats");
      return await next("stats") as unknown as PassthroughStats;
    },
    async [Symbol.asyncDispose]() {
      await writer.close().catch(() => {});
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await child.status;
      clearTimeout(timer);
      await lines.cancel().catch(() => {});
    },
  };
}

function splitLines(): TransformStream<string, string> {
  let buffered = "";
  return new TransformStream({
    transform(chunk, controller) {
      buffered += chunk;
      const parts = buffered.split("\n");
      buffered = parts.pop()!;
      for (const part of parts) if (part.trim()) controller.enqueue(part);
    },
  });
}
