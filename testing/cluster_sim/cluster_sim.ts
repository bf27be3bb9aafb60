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
import { runSimNode, type SimImage, type SimNodeRun } from "./sim_node.ts";

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
  const faults = options.faults ?? {};
  const images = imageSet(options.images, options.imageBytes, faults.missingImages ?? 0);
  const args = [...(options.waves ? ["--waves"] : []), ...(options.serverArgs ?? [])];
  const servers: MetricsServerProcess[] = [await startMetricsServerProcess({ args })];
  const endpoint = `127.0.0.1:${servers[0].grpcPort}`;
  const peakRss = { bytes: 0 };
  const rssTimer = setInterval(() => trackRss(servers.at(-1)!, peakRss), 250);
  const wire = wavesWire(endpoint, options.channels ?? 8);
  // A submitter's buffer is made for one node's results: one per 25 nodes keeps each small.
  const metrics = metricsWire(endpoint, Math.ceil(options.nodes / 25));
  using network = new SimNetwork({
    originBytesPerSecond: options.originBytesPerSecond,
    cache: options.cache ?? true,
  });
  const simCpu = await cpuSeconds("self");
  const start = performance.now();
  const elapsed = () => performance.now() - start;
  const [limitFrom, limitTo] = faults.rateLimitWindowMs ?? [-1, -1];
  const registry = { rateLimiting: () => elapsed() >= limitFrom && elapsed() < limitTo };
  const missing = new Set(images.filter((i) => i.missing).map((i) => i.name));
  const track = new MissingTracker(missing, elapsed);
  const names = Array.from({ length: options.nodes }, (_, n) => nodeName(n));
  const roles = pickRoles(options.nodes, faults);
  /** Nodes the run waits for: neither dead nor slow. */
  const counted = (n: number) => !roles.dead.has(n) && !roles.slow.has(n);
  const runOne = (n: number) =>
    runSimNode({
      name: names[n],
      images,
      network,
      bytesPerSecond: options.nodeBytesPerSecond / (roles.slow.has(n) ? 1_000 : 1),
      registry,
      exchange: options.waves ? wire.exchange(n) : undefined,
      onEvent: options.metrics ?? true
        ? eventSink(names[n], images.length, metrics.submit(n), (e) => track.event(n, e))
        : (e) => track.event(n, e),
    });
  const runs = new Map<number, SimNodeRun>();
  const finished = new Map<number, number>();
  const nodeDone = (n: number) => async (): Promise<void> => {
    const results = await runs.get(n)!.results;
    if (roles.reimaged.has(n)) {
      roles.reimaged.delete(n);
      runs.set(n, runOne(n));
      return nodeDone(n)();
    }
    finished.set(n, elapsed());
    // A dead node's images fail as interrupted: only live nodes' failures are wrong.
    const wrong = results.find((r) => r.status === "failed" && !missing.has(r.image));
    if (wrong && counted(n)) track.wrong.add(n);
  };
  const delayed = roles.slow.size > 0 ? 500 : 0;
  const all = names.map(async (_, n): Promise<void> => {
    if (!roles.slow.has(n)) await new Promise((r) => setTimeout(r, delayed));
    runs.set(n, runOne(n));
    await nodeDone(n)();
  });
  const timers = scheduleFaults(faults, roles, runs, servers, args, options.log);
  const progress = setInterval(async () => {
    if (!options.log) return;
    const waves = options.waves ? await wavesTotals(servers.at(-1)!) : "";
    options.log(`  ${(elapsed() / 1000).toFixed(0)} s: ${finished.size} nodes done${waves}`);
  }, 10_000);
  const live = names.filter((_, n) => counted(n)).length;
  await Promise.race([
    Promise.all(all.filter((_, n) => !roles.slow.has(n))),
    new Promise((r) => setTimeout(r, options.timeoutMs)),
  ]);
  clearInterval(progress);
  timers.forEach(clearTimeout);
  const doneLive = [...finished.keys()].filter(counted);
  const missingDone = track.doneAfterFirstFailure(live, counted);
  // Taken before the nodes still running are stopped (their images then fail as interrupted).
  const wronglyFailed = track.wrong.size;
  const phantomHolders = options.waves && doneLive.length === live
    ? await countPhantomHolders(servers.at(-1)!, runs, roles, images, finished)
    : undefined;
  await metrics.flush();
  clearInterval(rssTimer);
  await trackRss(servers.at(-1)!, peakRss);
  const serverCpuSeconds = await cpuSeconds(servers.at(-1)!.process.pid);
  const simCpuSeconds = await cpuSeconds("self") - simCpu;
  for (const run of runs.values()) run.kill();
  wire.close();
  for (const server of servers) await server.stop("SIGKILL");
  const existing = images.filter((i) => !i.missing).reduce((sum, i) => sum + i.size, 0);
  return {
    liveNodes: live,
    doneNodes: doneLive.length,
    allDoneMs: doneLive.length === live
      ? Math.max(...doneLive.map((n) => finished.get(n)!))
      : undefined,
    missingDoneAfterFirstFailureMs: missingDone,
    originRatio: network.originBytes / existing,
    peakNodesPulling: network.peakNodesPulling,
    peakDecisionsPerSecond: wire.peakPerSecond(),
    serverPeakRssBytes: peakRss.bytes,
    wronglyFailed,
    phantomHolders,
    simCpuSeconds,
    serverCpuSeconds,
  };
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
