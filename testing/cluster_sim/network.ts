/**
 * The simulated cluster's network: every pull is a flow of bytes, either from the origin registry
 * (one link shared by every flow from it) or from a pull-through cache in front of it (which has
 * an image once one flow from the origin has delivered it whole; flows that started before that,
 * each a miss, all came from the origin: the cache's double fetch). Each node's own link is
 * shared by its flows. Rates are recomputed every tick: per node an equal share of its link, and
 * the origin's link divided max-min fair among the flows that want it.
 *
 * @module
 */

/** Options for {@linkcode SimNetwork}. */
export interface SimNetworkOptions {
  /** The origin registry's egress, bytes per second, shared by every flow from it. */
  originBytesPerSecond: number;
  /** Put a pull-through cache in front of the origin. */
  cache: boolean;
  /**
   * How often rates and bytes are updated, in milliseconds.
   * @default {100}
   */
  tickMs?: number;
}

/** One node's link. */
export interface SimLink {
  /** Its bandwidth, bytes per second (shared by its flows). */
  bytesPerSecond: number;
  /** Flows running over it. */
  flows: number;
}

/** One pull's bytes in flight. */
export interface Flow {
  /** The node's link. */
  readonly link: SimLink;
  /** The image. */
  readonly image: string;
  /** Its size in bytes. */
  readonly size: number;
  /** Bytes received so far. */
  received: number;
  /** From the origin (a cache miss, or no cache). */
  readonly fromOrigin: boolean;
  /** Resolves when every byte arrived. */
  readonly done: Promise<void>;
}

interface FlowState extends Flow {
  resolve(): void;
  rate: number;
}

/** The links and flows of the simulated cluster. */
export class SimNetwork implements Disposable {
  readonly #options: SimNetworkOptions;
  readonly #flows = new Set<FlowState>();
  readonly #cached = new Set<string>();
  readonly #timer: ReturnType<typeof setInterval>;
  #originBytes = 0;
  #peakNodesPulling = 0;
  #last = performance.now();

  /** Starts ticking. */
  constructor(options: SimNetworkOptions) {
    this.#options = options;
    this.#timer = setInterval(() => this.#tick(), options.tickMs ?? 100);
  }

  /** Bytes the origin served. */
  get originBytes(): number {
    return this.#originBytes;
  }

  /** The most nodes with at least one flow at the same tick. */
  get peakNodesPulling(): number {
    return this.#peakNodesPulling;
  }

  /** Starts a pull of `image` (`size` bytes) over `link`; `signal` stops it (bytes so far count). */
  start(link: SimLink, image: string, size: number, signal: AbortSignal): Flow {
    let resolve!: () => void;
    const done = new Promise<void>((r) => resolve = r);
    const fromOrigin = !(this.#options.cache && this.#cached.has(image));
    const flow: FlowState = { link, image, size, received: 0, fromOrigin, done, resolve, rate: 0 };
    this.#flows.add(flow);
    link.flows++;
    signal.addEventListener("abort", () => this.#end(flow), { once: true });
    return flow;
  }

  /** Stops ticking. */
  [Symbol.dispose](): void {
    clearInterval(this.#timer);
  }

  #end(flow: FlowState): void {
    if (!this.#flows.delete(flow)) return;
    flow.link.flows--;
  }

  #tick(): void {
    const now = performance.now();
    const seconds = (now - this.#last) / 1000;
    this.#last = now;
    this.#rates();
    const links = new Set<SimLink>();
    for (const flow of [...this.#flows]) {
      const bytes = Math.min(flow.size - flow.received, flow.rate * seconds);
      flow.received += bytes;
      if (flow.fromOrigin) this.#originBytes += bytes;
      links.add(flow.link);
      if (flow.received >= flow.size) {
        this.#end(flow);
        if (flow.fromOrigin) this.#cached.add(flow.image);
        flow.resolve();
      }
    }
    this.#peakNodesPulling = Math.max(this.#peakNodesPulling, links.size);
  }

  /** Per flow: its node's share, and for origin flows a max-min fair share of the origin. */
  #rates(): void {
    const origin: FlowState[] = [];
    for (const flow of this.#flows) {
      flow.rate = flow.link.bytesPerSecond / flow.link.flows;
      if (flow.fromOrigin) origin.push(flow);
    }
    origin.sort((a, b) => a.rate - b.rate);
    let capacity = this.#options.originBytesPerSecond;
    origin.forEach((flow, i) => {
      flow.rate = Math.min(flow.rate, capacity / (origin.length - i));
      capacity -= flow.rate;
    });
  }
}
