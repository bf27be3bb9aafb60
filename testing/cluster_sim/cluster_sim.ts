/**
 * A simulated cluster in one process against a real `aggregate-metrics` process: N nodes, each
 * `fetch`'s real scheduler and waves gate over a modelled runtime ({@linkcode runSimNode}),
 * speaking the real gRPC protocol (`/Waves/Admit` through a few shared channels, `/Metrics/Submit`
 * through a few shared submitters) to the server, with faults: images the registry does not have
 * (404), nodes that die mid-run, nodes reimaged under the same name after their run, slow links,
 * a burst of 429s, the server SIGKILLed and restarted. Time is real; sizes and bandwidths are
 * whatever the caller models.
 *
 * @module
 */
import { Logger } from "../../lib/core/log.ts";
import { MetricsSubmitter } from "../../lib/metrics/client/submitter.ts";
import { metricsReporter } from "../../lib/metrics/client/events.ts";
import type { PullEvent } from "../../lib/pull/scheduler.ts";
import { WavesClient } from "../../lib/waves/client/waves_client.ts";
import type { WireAdmitRequest, WireAdmitResponse } from "../../lib/waves/protocol.ts";
import { type MetricsServerProcess, startMetricsServerProcess } from "../metrics_server_process.ts";
import { SimNetwork } from "./network.ts";
import { runSimNode, type SimImage, type SimNodeRun, type SimRegistry } from "./sim_node.ts";

/** What can go wrong in a simulated run. */
export interface SimFaults {
  /** How many of the images the registry answers 404 for. */
  missingImages?: number;
  /** Nodes that die at a random moment in the first `dieWithinMs`. */
  deadNodes?: number;
  /** @default {5_000} */
  dieWithinMs?: number;
  /** Nodes reimaged (their images gone) after their run, which then run again, same name. */
  reimagedNodes?: number;
  /**
   * Nodes on a link 1,000 times slower than the others, started 500 ms before them so that they
   * seed images; the run does not wait for their own pulls (they are not counted as nodes to
   * finish), only for what they hold back from the others.
   */
  slowNodes?: number;
  /** Every pull from the origin starting in this window fails with 429 (ms after the start). */
  rateLimitWindowMs?: [number, number];
  /** The server is SIGKILLed this long after the start and restarted 2 s later. */
  serverKillAtMs?: number;
}

/** Options for {@linkcode simulateCluster}. */
export interface ClusterSimOptions {
  /** How many nodes. */
  nodes: number;
  /** How many images, each wanted by every node. */
  images: number;
  /** Ask the coordinator (`fetch --waves`); otherwise every node pulls everything at once. */
  waves: boolean;
  /** Image sizes, uniform in [min, max] bytes. */
  imageBytes: [number, number];
  /** Each node's link, bytes per second. */
  nodeBytesPerSecond: number;
  /** The origin's egress, bytes per second. */
  originBytesPerSecond: number;
  /** @default {true} */
  cache?: boolean;
  /** @default {} */
  faults?: SimFaults;
  /** Stop waiting after this long; the result says how many nodes were done. */
  timeoutMs: number;
  /** More `aggregate-metrics` flags. */
  serverArgs?: string[];
  /** @default {8} */
  channels?: number;
  /**
   * Send every node's results to `/Metrics/Submit`, as `fetch --metrics-endpoint` does.
   * @default {true}
   */
  metrics?: boolean;
  /** Progress lines. */
  log?: (line: string) => void;
}

/** What one simulated run measured. */
export interface ClusterSimResult {
  /** Nodes that should finish (not dead). */
  liveNodes: number;
  /** Of those, how many finished within the timeout. */
  doneNodes: number;
  /** From the start until the last live node finished; undefined when some did not. */
  allDoneMs?: number;
  /** From the first failure of a 404 image until every live node was done with it. */
  missingDoneAfterFirstFailureMs?: number;
  /** Bytes the origin served over the bytes of the image set that exists. */
  originRatio: number;
  /** Most nodes pulling at the same moment. */
  peakNodesPulling: number;
  /** Most admission decisions answered within one second. */
  peakDecisionsPerSecond: number;
  /** The server's peak resident memory (the largest of its processes when restarted). */
  serverPeakRssBytes: number;
  /** Images that exist but ended failed on some live node. */
  wronglyFailed: number;
  /** Holders the coordinator counts that no live node is (after the run, when all were done). */
  phantomHolders?: number;
  /** CPU seconds this process (the simulated nodes) spent. */
  simCpuSeconds: number;
  /** CPU seconds the server spent (its last process, when restarted). */
  serverCpuSeconds: number;
}

/** Runs one simulated cluster against a new server process, and stops it. */
export async function simulateCluster(options: ClusterSimOptions): Promise<ClusterSimResult> {
  const args = [...(options.waves ? ["--waves"] : []), ...(options.serverArgs ?? [])];
  const cluster = new SimCluster(options, args, await startMetricsServerProcess({ args }));
  try {
    await cluster.run();
    return await cluster.measure();
  } finally {
    await cluster.stop();
  }
}

/** One simulated run: its server(s), wires, network and nodes. */
class SimCluster {
  readonly servers: MetricsServerProcess[];
  readonly images: SimImage[];
  readonly missing: Set<string>;
  readonly roles: Roles;
  readonly names: string[];
  readonly runs = new Map<number, SimNodeRun>();
  readonly finished = new Map<number, number>();
  readonly track: MissingTracker;
  readonly wire: ReturnType<typeof wavesWire>;
  readonly metrics: ReturnType<typeof metricsWire>;
  readonly network: SimNetwork;
  readonly registry: SimRegistry;
  readonly peakRss = { bytes: 0 };
  readonly #rssTimer: ReturnType<typeof setInterval>;
  readonly #start = performance.now();
  #simCpu = 0;

  constructor(
    readonly options: ClusterSimOptions,
    readonly args: string[],
    server: MetricsServerProcess,
  ) {
    const faults = options.faults ?? {};
    this.servers = [server];
    this.images = imageSet(options.images, options.imageBytes, faults.missingImages ?? 0);
    this.missing = new Set(this.images.filter((i) => i.missing).map((i) => i.name));
    this.roles = pickRoles(options.nodes, faults);
    this.names = Array.from({ length: options.nodes }, (_, n) => nodeName(n));
    this.track = new MissingTracker(this.missing, () => this.elapsed());
    const endpoint = `127.0.0.1:${server.grpcPort}`;
    this.wire = wavesWire(endpoint, options.channels ?? 8);
    // A submitter's buffer is made for one node's results: one per 25 nodes keeps each small.
    this.metrics = metricsWire(endpoint, Math.ceil(options.nodes / 25));
    this.network = new SimNetwork({
      originBytesPerSecond: options.originBytesPerSecond,
      cache: options.cache ?? true,
    });
    const [from, to] = faults.rateLimitWindowMs ?? [-1, -1];
    this.registry = { rateLimiting: () => this.elapsed() >= from && this.elapsed() < to };
    this.#rssTimer = setInterval(() => trackRss(this.server, this.peakRss), 250);
  }

  /** The server now (the last one started). */
  get server(): MetricsServerProcess {
    return this.servers.at(-1)!;
  }

  /** Nodes the run waits for: neither dead nor slow. */
  counted(n: number): boolean {
    return !this.roles.dead.has(n) && !this.roles.slow.has(n);
  }

  elapsed(): number {
    return performance.now() - this.#start;
  }

  /** Starts every node, with the faults, and waits for them or for the time limit. */
  async run(): Promise<void> {
    this.#simCpu = await cpuSeconds("self");
    const { options, roles } = this;
    const delayed = roles.slow.size > 0 ? 500 : 0;
    const all = this.names.map(async (_, n): Promise<void> => {
      if (!roles.slow.has(n)) await new Promise((r) => setTimeout(r, delayed));
      this.runs.set(n, this.#runOne(n));
      await this.#nodeDone(n);
    });
    const faults = options.faults ?? {};
    const timers = scheduleFaults(faults, roles, this.runs, this.servers, this.args, options.log);
    const progress = setInterval(() => this.#logProgress(), 10_000);
    await Promise.race([
      Promise.all(all.filter((_, n) => !roles.slow.has(n))),
      new Promise((r) => setTimeout(r, options.timeoutMs)),
    ]);
    clearInterval(progress);
    timers.forEach(clearTimeout);
  }

  /** The figures, taken before the nodes still running are stopped. */
  async measure(): Promise<ClusterSimResult> {
    const live = this.names.filter((_, n) => this.counted(n)).length;
    const doneLive = [...this.finished.keys()].filter((n) => this.counted(n));
    const allDone = doneLive.length === live;
    const missingDoneAfterFirstFailureMs = this.track.doneAfterFirstFailure(
      live,
      (n) => this.counted(n),
    );
    // Taken before the nodes still running are stopped (their images then fail as interrupted).
    const wronglyFailed = this.track.wrong.size;
    const phantomHolders = this.options.waves && allDone
      ? await countPhantomHolders(this.server, this.runs, this.roles, this.images, this.finished)
      : undefined;
    await this.metrics.flush();
    await trackRss(this.server, this.peakRss);
    const existing = this.images.filter((i) => !i.missing).reduce((sum, i) => sum + i.size, 0);
    return {
      liveNodes: live,
      doneNodes: doneLive.length,
      allDoneMs: allDone ? Math.max(...doneLive.map((n) => this.finished.get(n)!)) : undefined,
      missingDoneAfterFirstFailureMs,
      originRatio: this.network.originBytes / existing,
      peakNodesPulling: this.network.peakNodesPulling,
      peakDecisionsPerSecond: this.wire.peakPerSecond(),
      serverPeakRssBytes: this.peakRss.bytes,
      wronglyFailed,
      phantomHolders,
      simCpuSeconds: await cpuSeconds("self") - this.#simCpu,
      serverCpuSeconds: await cpuSeconds(this.server.process.pid),
    };
  }

  /** Stops the nodes, the wires, the network and every server process. */
  async stop(): Promise<void> {
    clearInterval(this.#rssTimer);
    for (const run of this.runs.values()) run.kill();
    this.wire.close();
    this.network[Symbol.dispose]();
    for (const server of this.servers) await server.stop("SIGKILL");
  }

  #runOne(n: number): SimNodeRun {
    const { options, track } = this;
    const name = this.names[n];
    const observe = (e: PullEvent) => track.event(n, e);
    return runSimNode({
      name,
      images: this.images,
      network: this.network,
      bytesPerSecond: options.nodeBytesPerSecond / (this.roles.slow.has(n) ? 1_000 : 1),
      registry: this.registry,
      exchange: options.waves ? this.wire.exchange(n) : undefined,
      onEvent: options.metrics ?? true
        ? eventSink(name, this.images.length, this.metrics.submit(n), observe)
        : observe,
    });
  }

  /** Waits for node `n`'s run; a node to reimage runs again, as new, under the same name. */
  async #nodeDone(n: number): Promise<void> {
    const results = await this.runs.get(n)!.results;
    if (this.roles.reimaged.delete(n)) {
      this.runs.set(n, this.#runOne(n));
      return await this.#nodeDone(n);
    }
    this.finished.set(n, this.elapsed());
    // A dead node's images fail as interrupted: only live nodes' failures are wrong.
    const wrong = results.find((r) => r.status === "failed" && !this.missing.has(r.image));
    if (wrong && this.counted(n)) this.track.wrong.add(n);
  }

  async #logProgress(): Promise<void> {
    if (!this.options.log) return;
    const waves = this.options.waves ? await wavesTotals(this.server) : "";
    const seconds = (this.elapsed() / 1000).toFixed(0);
    this.options.log(`  ${seconds} s: ${this.finished.size} nodes done${waves}`);
  }
}

/** The image set: deterministic sizes, the last `missing` of them 404. */
function imageSet(count: number, [min, max]: [number, number], missing: number): SimImage[] {
  let seed = 42;
  const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
  return Array.from({ length: count }, (_, i) => ({
    name: `registry.example.com/team/svc-${i}:v1`,
    size: Math.round(min + (max - min) * random()),
    missing: i >= count - missing,
  }));
}

function nodeName(n: number): string {
  return `ip-10-${n >> 16}-${(n >> 8) & 255}-${n & 255}.eu-west-1.compute.internal`;
}

interface Roles {
  dead: Set<number>;
  reimaged: Set<number>;
  slow: Set<number>;
}

/** Which nodes die, are reimaged, are slow: disjoint, spread over the cluster. */
function pickRoles(nodes: number, faults: SimFaults): Roles {
  const roles: Roles = { dead: new Set(), reimaged: new Set(), slow: new Set() };
  let next = 0;
  const take = (set: Set<number>, count: number) => {
    for (let i = 0; i < count; i++) set.add((next++ * 7_919) % nodes);
  };
  take(roles.slow, faults.slowNodes ?? 0);
  take(roles.dead, faults.deadNodes ?? 0);
  take(roles.reimaged, faults.reimagedNodes ?? 0);
  return roles;
}

function scheduleFaults(
  faults: SimFaults,
  roles: Roles,
  runs: Map<number, SimNodeRun>,
  servers: MetricsServerProcess[],
  args: string[],
  log?: (line: string) => void,
): ReturnType<typeof setTimeout>[] {
  const timers: ReturnType<typeof setTimeout>[] = [];
  let i = 0;
  for (const n of roles.dead) {
    const at = ((++i * 2_654_435_761) % 1_000) / 1_000 * (faults.dieWithinMs ?? 5_000);
    timers.push(setTimeout(() => runs.get(n)?.kill(), at));
  }
  if (faults.serverKillAtMs !== undefined) {
    timers.push(setTimeout(async () => {
      const old = servers.at(-1)!;
      log?.("  server: SIGKILL");
      await old.stop("SIGKILL");
      await new Promise((r) => setTimeout(r, 2_000));
      servers.push(
        await startMetricsServerProcess({ args, grpcPort: old.grpcPort, httpPort: old.httpPort }),
      );
      log?.("  server: restarted");
    }, faults.serverKillAtMs));
  }
  return timers;
}

/** The `/Waves/Admit` channels shared by the nodes, counting decisions answered per second. */
function wavesWire(endpoint: string, channels: number) {
  const clients = Array.from(
    { length: channels },
    () => new WavesClient({ endpoint, gracefulClose: false }),
  );
  const perSecond = new Map<number, number>();
  return {
    exchange: (n: number) => async (request: WireAdmitRequest, signal: AbortSignal) => {
      const response: WireAdmitResponse = await clients[n % channels].admit(request, signal);
      const second = Math.floor(performance.now() / 1000);
      perSecond.set(second, (perSecond.get(second) ?? 0) + request.want.length);
      return response;
    },
    peakPerSecond: () => Math.max(0, ...perSecond.values()),
    close: () => clients.forEach((c) => c[Symbol.dispose]()),
  };
}

/** The `/Metrics/Submit` submitters shared by the nodes, one channel each. */
function metricsWire(endpoint: string, channels: number) {
  const logger = new Logger({ write: () => {} });
  const submitters = Array.from(
    { length: channels },
    () => new MetricsSubmitter({ endpoint, logger, maxBuffered: 1_000_000, batchSize: 500 }),
  );
  return {
    submit: (n: number) => (result: Parameters<MetricsSubmitter["submit"]>[0]) =>
      submitters[n % channels].submit(result),
    flush: async () => {
      await Promise.all(submitters.map((s) => s.flush(10_000)));
    },
  };
}

function eventSink(
  node: string,
  imagesTotal: number,
  submit: Parameters<typeof metricsReporter>[0]["submit"],
  also: (event: PullEvent) => void,
): (event: PullEvent) => void {
  const report = metricsReporter({ node, imagesTotal, submit });
  return (event) => {
    report(event);
    also(event);
  };
}

/** When the 404 images first failed, and when each node was done with them. */
class MissingTracker {
  readonly wrong = new Set<number>();
  #firstFailure?: number;
  readonly #doneAt = new Map<number, number>();
  readonly #pending = new Map<number, number>();

  constructor(readonly missing: Set<string>, readonly elapsed: () => number) {}

  event(n: number, event: PullEvent): void {
    if (event.type === "attempt-finished" && event.error && this.missing.has(event.image)) {
      this.#firstFailure ??= this.elapsed();
    }
    if (event.type === "image-done" && this.missing.has(event.result.image)) {
      const left = (this.#pending.get(n) ?? this.missing.size) - 1;
      this.#pending.set(n, left);
      if (left === 0) this.#doneAt.set(n, this.elapsed());
    }
  }

  doneAfterFirstFailure(live: number, counted: (n: number) => boolean): number | undefined {
    if (this.#firstFailure === undefined) return undefined;
    const done = [...this.#doneAt].filter(([n]) => counted(n));
    if (done.length < live) return undefined;
    return Math.max(...done.map(([, at]) => at)) - this.#firstFailure;
  }
}

/** User + system CPU seconds of a process, from `/proc/<pid>/stat` (0 when it is gone). */
async function cpuSeconds(pid: number | "self"): Promise<number> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number);
    return (fields[11] + fields[12]) / 100;
  } catch {
    return 0;
  }
}

async function trackRss(server: MetricsServerProcess, peak: { bytes: number }): Promise<void> {
  try {
    const status = await Deno.readTextFile(`/proc/${server.process.pid}/status`);
    const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0);
    peak.bytes = Math.max(peak.bytes, kb * 1024);
  } catch { /* the process is gone (restarting) */ }
}

/** The coordinator's totals, for progress lines. */
async function wavesTotals(server: MetricsServerProcess): Promise<string> {
  const response = await fetch(`${server.url}/summary`).catch(() => undefined);
  if (!response?.ok) return "";
  const { waves } = await response.json();
  const images = (waves?.images ?? []) as Array<{ have: number; pulling: number; waiting: number }>;
  const sum = (key: "have" | "pulling" | "waiting") => images.reduce((n, i) => n + i[key], 0);
  return `; coordinator: ${sum("have")} have, ${sum("pulling")} pulling, ${sum("waiting")} ` +
    `waiting, ${waves?.decisions} decisions`;
}

/** Holders in the coordinator's picture beyond the live nodes that hold the image. */
async function countPhantomHolders(
  server: MetricsServerProcess,
  runs: Map<number, SimNodeRun>,
  roles: Roles,
  images: SimImage[],
  finished: Map<number, number>,
): Promise<number | undefined> {
  const response = await fetch(`${server.url}/summary`).catch(() => undefined);
  if (!response?.ok) return undefined;
  const summary = await response.json();
  const have = (summary.waves?.images ?? []) as Array<{ image: string; have: number }>;
  const counted = have.reduce((sum, i) => sum + i.have, 0);
  const liveDone = [...finished.keys()].filter((n) => !roles.dead.has(n) && runs.has(n));
  const truth = liveDone.length * images.filter((i) => !i.missing).length;
  return counted - truth;
}
