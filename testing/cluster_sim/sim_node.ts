/**
 * One simulated node: `fetch`'s real pull scheduler, progress monitor and waves gate over a
 * modelled runtime whose pulls are flows of a {@linkcode SimNetwork}. Only the runtime is
 * modelled (its images, its pulls' bytes, a registry's 404 and 429 answers); every timing rule
 * (attempt timeouts, retry delays, stall cuts, the gate's exchanges, leases renewed by progress)
 * is the real code's.
 *
 * @module
 */
import { DEFAULT_RETRY_SCHEDULE } from "../../lib/core/retry_schedule.ts";
import { CriError } from "../../lib/runtime/cri_error.ts";
import type { CriImage } from "../../lib/runtime/cri_client.ts";
import { type ImageResult, type PullEvent, pullImages } from "../../lib/pull/scheduler.ts";
import { GATE_FLUSH } from "../../lib/pull/gate.ts";
import { ProgressMonitor } from "../../lib/pull/progress_monitor.ts";
import type { ImageProgress } from "../../lib/pull/progress_source.ts";
import { WavesGate } from "../../lib/waves/client/waves_gate.ts";
import type { WireAdmitRequest, WireAdmitResponse } from "../../lib/waves/protocol.ts";
import type { Flow, SimLink, SimNetwork } from "./network.ts";

/** One image of the simulated set. */
export interface SimImage {
  /** Its normalised reference. */
  name: string;
  /** Its size in bytes. */
  size: number;
  /** The registry answers 404 for it. */
  missing?: boolean;
}

/** What a node asks of the simulated registry besides bytes. */
export interface SimRegistry {
  /** The registry answers 429 to a pull that starts now. */
  rateLimiting(): boolean;
}

/** Options for {@linkcode runSimNode}. */
export interface SimNodeOptions {
  /** The node's name. */
  name: string;
  /** What it pulls. */
  images: readonly SimImage[];
  /** Where bytes flow. */
  network: SimNetwork;
  /** Its link's bandwidth, bytes per second. */
  bytesPerSecond: number;
  /** The registry's faults. */
  registry: SimRegistry;
  /** One `/Waves/Admit` exchange; without it the node pulls everything at once. */
  exchange?: (request: WireAdmitRequest, signal: AbortSignal) => Promise<WireAdmitResponse>;
  /** Receives every pull event (e.g. a metrics reporter). */
  onEvent?: (event: PullEvent) => void;
  /** How many images it pulls at once (`--max-parallel`); 0 for all. */
  maxParallel?: number;
}

/** A node's run. */
export interface SimNodeRun {
  /** One result per image, when the run is over (never rejects). */
  results: Promise<ImageResult[]>;
  /** The node dies: its process is gone, it tells the coordinator nothing more. */
  kill(): void;
}

const MANIFEST_MS = 20;

/** Starts one node's `fetch` run. */
export function runSimNode(options: SimNodeOptions): SimNodeRun {
  const death = new AbortController();
  const stored = new Map<string, number>();
  const flows = new Map<string, Flow>();
  const link: SimLink = { bytesPerSecond: options.bytesPerSecond, flows: 0 };
  const sizes = new Map(options.images.map((image) => [image.name, image]));
  const runtime = {
    imageStatus: (image: string): Promise<CriImage | undefined> => {
      const size = stored.get(image);
      return Promise.resolve(
        size === undefined ? undefined : {
          id: `sha256:${image}`,
          repoTags: [image],
          repoDigests: [],
          sizeBytes: size,
          pinned: false,
        },
      );
    },
    pullImage: (image: string, pull?: { signal?: AbortSignal }) =>
      simPull(sizes.get(image)!, pull?.signal ?? death.signal),
  };
  const simPull = async (image: SimImage, signal: AbortSignal): Promise<string> => {
    await sleep(MANIFEST_MS, signal);
    if (image.missing) {
      throw new CriError("PullImage", {
        code: 5,
        message: "",
        details: `failed to resolve reference "${image.name}": ${image.name}: not found`,
      });
    }
    if (options.registry.rateLimiting()) {
      throw new CriError("PullImage", {
        code: 2,
        message: "",
        details: `unexpected status from HEAD request to ${image.name}: 429 Too Many Requests`,
      });
    }
    const flow = options.network.start(link, image.name, image.size, signal);
    flows.set(image.name, flow);
    try {
      await Promise.race([flow.done, aborted(signal)]);
    } finally {
      flows.delete(image.name);
    }
    stored.set(image.name, image.size);
    return `sha256:${image.name}`;
  };
  const progress = new ProgressMonitor({
    source: {
      sample: (images) => {
        const samples = new Map<string, ImageProgress>();
        for (const image of images) {
          const flow = flows.get(image);
          if (flow) {
            samples.set(image, {
              receivedBytes: flow.received,
              totalBytes: flow.size,
              activeDownloads: 1,
            });
          }
        }
        return Promise.resolve(samples);
      },
    },
    stallTimeoutMs: 10_000,
    stepBytes: 1,
  });
  const gate = options.exchange &&
    new WavesGate({ node: options.name, exchange: options.exchange, maxWaitMs: 30_000 });
  const results = (async () => {
    try {
      return await pullImages(
        options.images.map((image) => ({ image: image.name, pinned: true, credentials: [] })),
        {
          runtime,
          schedule: DEFAULT_RETRY_SCHEDULE,
          overallTimeoutMs: 20 * 60_000,
          maxParallel: options.maxParallel ?? 0,
          progress,
          gate,
          onEvent: options.onEvent,
          signal: death.signal,
        },
      );
    } finally {
      if (!death.signal.aborted) await gate?.flush(GATE_FLUSH.timeoutMs, GATE_FLUSH.patienceMs);
      gate?.close();
    }
  })();
  const kill = () => {
    gate?.close();
    death.abort(new Error("the node died"));
  };
  return { results, kill };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", stop);
      resolve();
    }, ms);
    const stop = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener("abort", stop, { once: true });
  });
}

function aborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
}
