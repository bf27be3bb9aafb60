/**
 * One `fetch` run: read the image list and the docker config, reach the container runtime, pull
 * every image, log each event and print the summary. Returns the exit status; never throws for
 * bad input or failed images.
 *
 * @module
 */
import { type Clock, systemClock } from "../core/clock.ts";
import { Deadline } from "../core/deadline.ts";
import { CriClient, type RuntimeVersion } from "../runtime/cri_client.ts";
import {
  credentialsFor,
  describeCredential,
  type DockerConfig,
  parseDockerConfig,
} from "../image/docker_config.ts";
import { formatDuration } from "../core/duration.ts";
import { ExitCode, InterruptedError, InvalidInputError } from "../core/exit_codes.ts";
import {
  dedupeImages,
  type ImageListEntry,
  type ImageListProblem,
  parseImageList,
} from "../image/list.ts";
import { isPinned } from "../image/reference.ts";
import type { LogFormat, Logger } from "../core/log.ts";
import {
  describeError,
  type ImageResult,
  pullImages,
  type PullPolicy,
  type PullTarget,
} from "./scheduler.ts";
import type { RetryScheduleOptions } from "../core/retry_schedule.ts";
import { type FetchSummary, formatSummaryText, summarize } from "./run_summary.ts";
import { logPullEvent } from "./event_log.ts";
import { ProgressMonitor } from "./progress_monitor.ts";
import { GATE_FLUSH, type OpenPullGate } from "./gate.ts";
import type { OpenPullReporter, PullReporter } from "./reporter.ts";
import { ContainerdProgressSource, probeProgress } from "../runtime/containerd_progress.ts";
import { openRunLease, type RunLease } from "../runtime/containerd_run_lease.ts";
import { ContainerdImages } from "../runtime/containerd_images.ts";
import { pinImages, type PinStatusReader } from "./pin_images.ts";
import {
  addPluginCredentials,
  loadPluginCredentials,
  type PluginSettings,
} from "./plugin_credentials.ts";
import { type NodeUpdateSettings, updateNodeAfterRun } from "../kube/node_after_run.ts";

/** Everything a `fetch` run is told by its flags. */
export interface FetchConfig {
  /** Path of the CRI socket. */
  criSocket: string;
  /** Path of the image list file, if any. */
  imageListFile?: string;
  /** Images given as command-line arguments. */
  images: string[];
  /** Path of a docker config (`.dockerconfigjson`) with registry credentials, if any. */
  dockerConfig?: string;
  /** Kubelet credential provider plugins to run for credentials, if any. */
  credentialProviders?: PluginSettings;
  /** The node label and startup taint to write after the run, if any. */
  nodeUpdates?: NodeUpdateSettings;
  /** How long to wait for the image list file to appear. */
  imageListTimeoutMs: number;
  /** How long to wait for the runtime to answer on its socket. */
  criConnectTimeoutMs: number;
  /** Attempt timeouts and delays. */
  schedule: RetryScheduleOptions;
  /** The bound on the whole run. */
  overallTimeoutMs: number;
  /** `auto` watches each pull's bytes where the runtime shows them; `off` never does. */
  progress: "auto" | "off";
  /** Cut an attempt that received nothing for this long (when progress is watched). */
  stallTimeoutMs: number;
  /** How often a downloading image logs a progress line. */
  progressIntervalMs: number;
  /** How many pulls may run at once; 0 for no bound. */
  maxParallel: number;
  /** Overrides Kubernetes' per-image default pull policy. */
  pullPolicy?: PullPolicy;
  /** The node's name, for logs and metrics. */
  nodeName: string;
  /** Exit non-zero when any image fails. */
  strict: boolean;
  /** Pin the images on the node so the kubelet's image garbage collection keeps them. */
  pin?: boolean;
  /** With `pin`: the owner recorded on each pin, so that only it releases the pin. */
  pinOwner?: string;
  /**
   * Pull every tag again, whatever the pull policy, so that a tag moved in the registry lands;
   * references by digest are pulled only when absent (`keep`'s refresh).
   */
  refreshTags?: boolean;
}

/** What a run hands to {@linkcode FetchContext.afterPulls} once its images are pulled. */
export interface PulledRun {
  /** Every image's result. */
  results: ImageResult[];
  /** The runtime's CRI side (image status, with its ID and `pinned`). */
  runtime: PinStatusReader;
  /** Aborts at the run's finish deadline (`--overall-timeout`) or when the run is stopped. */
  signal: AbortSignal;
  /** How many lines of the list were not image references. */
  invalidLines: number;
}

/** What a run needs from its surroundings. */
export interface FetchContext {
  /** Where events are logged. */
  logger: Logger;
  /** Format of the final summary on standard output. */
  summaryFormat: LogFormat;
  /** Receives the final summary. */
  writeSummary: (text: string) => void;
  /** Aborted with an {@linkcode InterruptedError} when the run must stop. */
  signal?: AbortSignal;
  /** Opens where pull events are reported besides the log (the metrics server), if anywhere. */
  openReporter?: OpenPullReporter;
  /** Opens what admits each image before it is pulled (cluster-wide waves), if anything. */
  openGate?: OpenPullGate;
  /**
   * Runs after the pulls and the pins, before the summary (not when the run was stopped):
   * `keep` releases its pins of what left the list, and failures become Kubernetes Events.
   */
  afterPulls?: (run: PulledRun) => Promise<void>;
  /**
   * Time and waits.
   * @default {systemClock}
   */
  clock?: Clock;
}

/**
 * After the pulls, pinning, the metrics' last delivery and the node's label and taint share what
 * is left of `--overall-timeout`, and at least this long when the pulls used it all.
 */
export const FINISH_GRACE_MS = 2_000;
/** After SIGTERM or SIGINT, what the run has left to finish (summary, metrics, node label). */
export const INTERRUPTED_FINISH_MS = 1_500;

/** Runs `fetch` and returns its exit status. */
export async function runFetch(config: FetchConfig, context: FetchContext): Promise<number> {
  const { logger } = context;
  const clock = context.clock ?? systemClock;
  const start = clock.now();
  const overallAt = start + config.overallTimeoutMs;
  try {
    // The waits for the list and the runtime count against --overall-timeout too.
    const listTimeoutMs = Math.min(config.imageListTimeoutMs, config.overallTimeoutMs);
    const input = await readInput(
      { ...config, imageListTimeoutMs: listTimeoutMs },
      logger,
      clock,
      context.signal,
    );
    const reporter = context.openReporter?.({ imagesTotal: input.entries.length });
    using runtime = new CriClient(config.criSocket);
    const connectTimeoutMs = Math.min(
      config.criConnectTimeoutMs,
      Math.max(0, overallAt - clock.now()),
    );
    const version = await waitForRuntime(
      runtime,
      { ...config, criConnectTimeoutMs: connectTimeoutMs },
      clock,
      context,
    );
    await using progress = await watchProgress(config, clock, logger, context.signal);
    logger.info("fetch started", {
      node: config.nodeName,
      runtime: runtimeName(version),
      socket: config.criSocket,
      images: input.entries.length,
      max_parallel: config.maxParallel || "unbounded",
      pull_policy: config.pullPolicy ?? "kubernetes-default",
      progress: progress.monitor ? "watched" : "off",
    });
    const targets = await pullTargets(input, logger, config.refreshTags === true);
    using gate = context.openGate?.({ renewWithoutProgress: !progress.monitor });
    const results = await pullImages(targets, {
      runtime,
      schedule: config.schedule,
      overallTimeoutMs: config.overallTimeoutMs,
      startedAt: start,
      maxParallel: config.maxParallel,
      pullPolicy: config.refreshTags ? undefined : config.pullPolicy,
      signal: context.signal,
      clock,
      progress: progress.monitor,
      progressEventIntervalMs: config.progressIntervalMs,
      gate: gate?.gate,
      onEvent: (event) => {
        logPullEvent(logger, event);
        reporter?.report(event);
      },
    });
    using finish = finishDeadline(clock, overallAt, context.signal);
    // The news reaches the coordinator while the run pins and reports.
    const interrupted = context.signal?.aborted;
    const gateFlushed = gate?.flush(
      Math.min(interrupted ? 500 : GATE_FLUSH.timeoutMs, finish.remainingMs()),
      interrupted ? 500 : GATE_FLUSH.patienceMs,
    );
    if (config.pin) {
      await pinAfterRun(config, results, { runtime, version, context, clock, finish });
    }
    if (context.afterPulls && !context.signal?.aborted) {
      const invalidLines = input.problems.length;
      await context.afterPulls({
        results,
        runtime,
        signal: finish.signal,
        invalidLines,
      });
    }
    const [summary] = await Promise.all([
      writeSummary(config, context, { results, reporter, start, clock, input, finish }),
      gateFlushed,
    ]);
    return await exitStatus(config, context, summary, input.problems.length, { clock, finish });
  } catch (error) {
    return exitStatusOfError(error, logger);
  }
}

/** What a run reads before it reaches the runtime: images, bad lines, credentials. */
interface RunInput {
  entries: ImageListEntry[];
  problems: ImageListProblem[];
  dockerConfig?: DockerConfig;
  plugins?: Awaited<ReturnType<typeof loadPluginCredentials>>;
}

/** Reads the image list, the docker config and the credential provider config; logs bad lines. */
async function readInput(
  config: FetchConfig,
  logger: Logger,
  clock: Clock,
  signal: AbortSignal | undefined,
): Promise<RunInput> {
  const { entries, problems } = await loadImages(config, clock, signal);
  for (const problem of problems) {
    logger.error("invalid image reference", { source: problem.source, error: problem.message });
  }
  if (entries.length === 0 && problems.length === 0) {
    logger.warn("nothing to pull: the image list has no images", { file: config.imageListFile });
  }
  const dockerConfig = config.dockerConfig
    ? await loadDockerConfig(config.dockerConfig)
    : undefined;
  const plugins = config.credentialProviders
    ? await loadPluginCredentials(config.credentialProviders, logger, clock)
    : undefined;
  return { entries, problems, dockerConfig, plugins };
}

/** One target per image, with its docker-config credentials and, after them, its plugins'. */
async function pullTargets(
  input: RunInput,
  logger: Logger,
  refreshTags: boolean,
): Promise<PullTarget[]> {
  const targets = input.entries.map((entry) => {
    const target = toTarget(entry, input.dockerConfig, logger);
    // A refresh pulls every tag again (scheduler: not pinned, no policy, so Always).
    return refreshTags ? { ...target, pinned: entry.reference.digest !== undefined } : target;
  });
  if (input.plugins) {
    const references = input.entries.map((e) => e.reference);
    await addPluginCredentials(targets, references, input.plugins, logger);
  }
  return targets;
}

function runtimeName(version: RuntimeVersion): string {
  return `${version.runtimeName} ${version.runtimeVersion}`;
}

/**
 * The deadline of what follows the pulls: what is left of `--overall-timeout`, at least
 * {@linkcode FINISH_GRACE_MS}; from an interrupt on, {@linkcode INTERRUPTED_FINISH_MS}.
 */
function finishDeadline(clock: Clock, overallAt: number, interrupt?: AbortSignal): Deadline {
  const finish = new Deadline(
    clock,
    Math.max(overallAt, clock.now() + FINISH_GRACE_MS),
    () => new Error("the run's time is up (--overall-timeout)"),
  );
  const shorten = () =>
    finish.shorten(clock.now() + INTERRUPTED_FINISH_MS, () => interrupt?.reason);
  if (interrupt?.aborted) shorten();
  else interrupt?.addEventListener("abort", shorten, { once: true });
  return finish;
}

/** `--pin`: pins what is on the node, unless the run was stopped, within the run's time. */
async function pinAfterRun(
  config: FetchConfig,
  results: ImageResult[],
  run: {
    runtime: CriClient;
    version: RuntimeVersion;
    context: FetchContext;
    clock: Clock;
    finish: Deadline;
  },
): Promise<void> {
  const { logger } = run.context;
  if (run.context.signal?.aborted || run.finish.signal.aborted) {
    logger.warn("not pinning images: the run was stopped or its time is up");
    return;
  }
  using labeler = new ContainerdImages(config.criSocket);
  await pinImages(results, {
    labeler,
    cri: run.runtime,
    logger,
    clock: run.clock,
    runtime: runtimeName(run.version),
    owner: config.pinOwner,
    signal: run.finish.signal,
  });
}

/**
 * Gives the metrics server a moment to take what is still buffered (less when interrupted), then
 * writes the summary, with what reached the server.
 */
async function writeSummary(
  config: FetchConfig,
  context: FetchContext,
  run: {
    results: ImageResult[];
    reporter?: PullReporter;
    start: number;
    clock: Clock;
    input: RunInput;
    finish: Deadline;
  },
): Promise<FetchSummary> {
  const { reporter, finish } = run;
  const delivery = await reporter?.flush(Math.min(10_000, finish.remainingMs()), finish.signal);
  if (reporter && delivery && delivery.undelivered > 0) {
    context.logger.warn("some pull attempts could not be delivered to the metrics server", {
      endpoint: reporter.endpoint,
      ...delivery,
    });
  }
  const wallMs = run.clock.now() - run.start;
  const summary = summarize(config.nodeName, run.results, wallMs, run.input.problems.length);
  if (reporter && delivery) summary.metrics = { endpoint: reporter.endpoint, ...delivery };
  context.writeSummary(
    context.summaryFormat === "json" ? JSON.stringify({ summary }) : formatSummaryText(summary),
  );
  return summary;
}

/** Writes the node label and removes the startup taint if asked, then says the exit status. */
async function exitStatus(
  config: FetchConfig,
  context: FetchContext,
  summary: FetchSummary,
  invalidLines: number,
  { clock, finish }: { clock: Clock; finish: Deadline },
): Promise<number> {
  const interrupt = context.signal?.reason;
  const interrupted = context.signal?.aborted === true && interrupt instanceof InterruptedError;
  const node = config.nodeUpdates &&
    await updateNodeAfterRun(config.nodeUpdates, {
      node: config.nodeName,
      allOnNode: summary.failed === 0 && invalidLines === 0,
      interrupted,
      strict: config.strict,
    }, { logger: context.logger, clock, signal: finish.signal, deadline: finish.at });
  // Interrupted during the updates too: the signal's exit status.
  const stopped = context.signal?.reason;
  if (stopped instanceof InterruptedError) return stopped.exitCode;
  if (node?.taintRemovalFailed) return ExitCode.StartupTaintKept;
  if (invalidLines > 0) return ExitCode.InvalidInput;
  if (summary.failed > 0 && config.strict) return ExitCode.ImagesFailed;
  return ExitCode.Ok;
}

/** The exit status of a run that ended before its summary: bad input, no runtime, stopped. */
function exitStatusOfError(error: unknown, logger: Logger): number {
  if (error instanceof InvalidInputError) {
    logger.error(error.message);
    return ExitCode.InvalidInput;
  }
  if (error instanceof RuntimeUnreachableError) {
    logger.error(error.message);
    return ExitCode.RuntimeUnreachable;
  }
  if (error instanceof InterruptedError) {
    logger.error("stopped before pulling", { reason: error.message });
    return error.exitCode;
  }
  throw error;
}

/** The runtime did not answer on its socket in time. */
export class RuntimeUnreachableError extends Error {
  /** Creates the error with a sentence a user can act on. */
  constructor(message: string) {
    super(message);
    this.name = "RuntimeUnreachableError";
  }
}

async function loadImages(
  config: FetchConfig,
  clock: Clock,
  signal: AbortSignal | undefined,
): Promise<{ entries: ImageListEntry[]; problems: ImageListProblem[] }> {
  if (!config.imageListFile && config.images.length === 0) {
    throw new InvalidInputError(
      "No images to pull: pass --image-list-file with one image per line, or images as arguments.",
    );
  }
  const entries: ImageListEntry[] = [];
  const problems: ImageListProblem[] = [];
  if (config.imageListFile) {
    const text = await readImageListFile(
      config.imageListFile,
      config.imageListTimeoutMs,
      clock,
      signal,
    );
    const parsed = parseImageList(text, config.imageListFile);
    entries.push(...parsed.entries);
    problems.push(...parsed.problems);
  }
  config.images.forEach((image, index) => {
    const parsed = parseImageList(image, "argument");
    for (const entry of parsed.entries) entries.push({ ...entry, source: `argument ${index + 1}` });
    for (const problem of parsed.problems) {
      problems.push({ ...problem, source: `argument ${index + 1}` });
    }
  });
  return { entries: dedupeImages(entries), problems };
}

/**
 * Reads the image list, waiting up to `timeoutMs` for the file to appear (a ConfigMap volume
 * can be populated a moment after the container starts).
 */
async function readImageListFile(
  path: string,
  timeoutMs: number,
  clock: Clock,
  signal: AbortSignal | undefined,
): Promise<string> {
  const deadline = clock.now() + timeoutMs;
  while (true) {
    try {
      return await Deno.readTextFile(path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) {
        throw new InvalidInputError(
          `Cannot read the image list file ${path} (${describeError(error)}); ` +
            "make it a readable text file with one image per line, or fix --image-list-file.",
        );
      }
      if (clock.now() >= deadline) {
        throw new InvalidInputError(
          `The image list file ${path} does not exist (waited ${formatDuration(timeoutMs)}); ` +
            "create it with one image per line, or point --image-list-file at it.",
        );
      }
      await clock.sleep(Math.min(500, Math.max(0, deadline - clock.now())), signal);
    }
  }
}

async function loadDockerConfig(path: string): Promise<DockerConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new InvalidInputError(
      `Cannot read the docker config ${path} (${describeError(error)}); ` +
        "point --docker-config at a readable .dockerconfigjson file, or leave it out for anonymous pulls.",
    );
  }
  try {
    return parseDockerConfig(text, path);
  } catch (error) {
    throw new InvalidInputError(describeError(error));
  }
}

/**
 * Opens the runtime's progress view when `--progress auto` and the runtime has one; otherwise
 * says once why attempts fall back to their wall-clock timeouts. On containerd, the view comes
 * with the run's lease, which keeps what a cut attempt committed for its retry.
 */
async function watchProgress(
  config: FetchConfig,
  clock: Clock,
  logger: Logger,
  signal: AbortSignal | undefined,
): Promise<{ monitor?: ProgressMonitor } & AsyncDisposable> {
  const none = { [Symbol.asyncDispose]: () => Promise.resolve() };
  if (config.progress === "off") {
    logger.info("progress watching is off (--progress off); attempts end at their timeouts");
    return none;
  }
  const probe = await probeProgress(config.criSocket);
  if (!probe.available) {
    logger.warn(
      "cannot watch pull progress on this runtime; attempts end at their wall-clock timeouts",
      { socket: config.criSocket, reason: probe.reason },
    );
    return none;
  }
  let lease: Awaited<ReturnType<typeof openLease>>;
  try {
    lease = await openLease(config, logger, signal);
  } catch (error) {
    probe.source.close();
    throw error;
  }
  const source = lease
    ? new ContainerdProgressSource(config.criSocket, { keeper: lease })
    : probe.source;
  if (lease) probe.source.close();
  const monitor = new ProgressMonitor({
    source,
    stallTimeoutMs: config.stallTimeoutMs,
    clock,
    onSampleError: (error) =>
      logger.warn("a pull progress sample failed; judging by time until samples come back", {
        error: describeError(error),
      }),
  });
  return {
    monitor,
    [Symbol.asyncDispose]: async () => {
      source.close();
      await lease?.release();
    },
  };
}

/**
 * The run's own containerd lease, holding the blobs of the images being pulled until the run
 * ends; without one (a failure is logged), a retry after a cut attempt downloads everything again.
 */
async function openLease(
  config: FetchConfig,
  logger: Logger,
  signal: AbortSignal | undefined,
): Promise<RunLease | undefined> {
  const onError = (error: unknown) =>
    logger.warn("cannot hold pulled blobs in the run's lease; a retry may download them again", {
      error: describeError(error),
    });
  try {
    const lease = await openRunLease(config.criSocket, {
      overallTimeoutMs: config.overallTimeoutMs,
      signal,
      onError,
    });
    logger.debug("holding the blobs of this run's pulls in a containerd lease", {
      lease: lease.id,
    });
    return lease;
  } catch (error) {
    if (signal?.aborted) throw signal.reason;
    onError(error);
    return undefined;
  }
}

async function waitForRuntime(
  runtime: { version(o?: { signal?: AbortSignal }): Promise<RuntimeVersion> },
  config: FetchConfig,
  clock: Clock,
  context: FetchContext,
): Promise<RuntimeVersion> {
  const deadline = clock.now() + config.criConnectTimeoutMs;
  let warned = false;
  while (true) {
    const call = new AbortController();
    const signals = [call.signal, ...(context.signal ? [context.signal] : [])];
    clock.sleep(5_000, call.signal).then(
      () => call.abort(new Error("no answer within 5s")),
      () => {},
    );
    try {
      return await runtime.version({ signal: AbortSignal.any(signals) });
    } catch (error) {
      if (context.signal?.aborted) throw context.signal.reason;
      const why = describeError(error);
      if (clock.now() >= deadline) {
        throw new RuntimeUnreachableError(
          `The container runtime does not answer on ${config.criSocket} ` +
            `(waited ${formatDuration(config.criConnectTimeoutMs)}: ${why}); ` +
            "point --cri-socket at the node's CRI socket (containerd: /run/containerd/containerd.sock, " +
            "CRI-O: /var/run/crio/crio.sock) and make sure it is mounted into the container.",
        );
      }
      if (!warned) {
        context.logger.warn("waiting for the container runtime", {
          socket: config.criSocket,
          error: why,
        });
        warned = true;
      }
      await clock.sleep(Math.min(1_000, Math.max(0, deadline - clock.now())), context.signal);
    } finally {
      call.abort();
    }
  }
}

function toTarget(
  entry: ImageListEntry,
  config: DockerConfig | undefined,
  logger: Logger,
): PullTarget {
  const credentials = config ? credentialsFor(config, entry.reference) : [];
  for (const credential of credentials) {
    logger.debug("credential matches", {
      image: entry.reference.normalized,
      credential: describeCredential(credential),
    });
  }
  return {
    image: entry.reference.normalized,
    pinned: isPinned(entry.reference),
    credentials: credentials.map((c) => ({
      username: c.username,
      password: c.password,
      auth: c.auth,
      // No serverAddress, as the kubelet sends none: containerd ignores credentials whose
      // serverAddress is not a URL of the image's host ("quay.io"), or fails on "host:5000".
      identityToken: c.identityToken,
      registryToken: c.registryToken,
    })),
  };
}
