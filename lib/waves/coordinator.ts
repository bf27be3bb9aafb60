/**
 * The admission logic of cluster-wide waves, pure: which node may pull which image now.
 *
 * Per image, a first wave of `firstWave` nodes pulls it from the registry; once k nodes have it,
 * up to k × `fanout` may pull it at once (from a pull-through cache or from peers that have it).
 * First waves are spread: a node already seeding an image may seed another only once that image
 * has waited `spreadWaitMs` for a node that seeds nothing yet (twice that while some live node
 * seeds fewer than this one), so nodes that start a moment later still get first waves. Across the cluster at most `maxNodesPulling` nodes pull at
 * once, and per registry an {@linkcode AimdBound} halves on 429 and grows on success.
 *
 * An admission is a lease that the node's progress renews; a node that dies or stalls stops
 * renewing and its slot frees after `leaseMs`. The coordinator keeps everything in memory and is
 * rebuilt after a restart from what nodes report ({@linkcode WaveCoordinator.restore}).
 *
 * Time comes from an injected clock; there is no I/O. Memory: images × nodes / 8 bytes for who
 * has what, images × nodes × 8 bytes for who waits (allocated as nodes ask), plus one small
 * record per lease, node, image and registry.
 *
 * @example
 * ```ts
 * import { WaveCoordinator } from "./coordinator.ts";
 *
 * const waves = new WaveCoordinator({ fanout: 2 });
 * waves.admit("node-a", "registry.example/app:1"); // { pull: true, firstWave: true }
 * waves.admit("node-b", "registry.example/app:1"); // { pull: false, reason: "first-wave" }
 * waves.landed("node-a", "registry.example/app:1", { pulled: true });
 * waves.admit("node-b", "registry.example/app:1"); // { pull: true, firstWave: false }
 * ```
 *
 * @module
 */
import type { Clock } from "../core/clock.ts";
import { systemClock } from "../core/clock.ts";
import { AimdBound, type AimdBoundOptions } from "./aimd_bound.ts";
import { NodeBitset } from "./node_bitset.ts";
import { type ImageWaves, registryOf, type WavesSnapshot } from "./snapshot.ts";

/** Options for {@linkcode WaveCoordinator}. */
export interface WaveCoordinatorOptions {
  /**
   * How many nodes pull an image while no node has it yet.
   * @default {1}
   */
  firstWave?: number;
  /**
   * Once k nodes have an image, up to k × fanout may pull it at once.
   * @default {4}
   */
  fanout?: number;
  /**
   * How many nodes may pull at once in the whole cluster; 0 for no bound.
   * @default {0}
   */
  maxNodesPulling?: number;
  /**
   * An admission not renewed for this long frees its slot; a node not heard from for this long
   * no longer counts as waiting or as a candidate seed.
   * @default {30_000}
   */
  leaseMs?: number;
  /**
   * How long an image with no holder waits for a node seeding nothing before a node already
   * seeding another image may seed it too (twice this while a live node seeds fewer).
   * @default {2_000}
   */
  spreadWaitMs?: number;
  /** How each registry's bound reacts to rate limits. */
  aimd?: AimdBoundOptions;
  /**
   * Time; only `now()` is used.
   * @default {systemClock}
   */
  clock?: Pick<Clock, "now">;
}

/** Why an image must wait. */
export type WaitReason =
  /** Its first wave is full: other nodes are pulling it and none has it yet. */
  | "first-wave"
  /** This node already seeds another image; a node seeding nothing may take this one first. */
  | "spreading"
  /** k nodes have it and k × fanout are pulling it. */
  | "fanout"
  /** `maxNodesPulling` nodes are pulling already. */
  | "max-nodes-pulling"
  /** Its registry answered 429 and its bound of nodes pulling is reached. */
  | "registry-limit";

/** The answer to {@linkcode WaveCoordinator.admit}. */
export type Decision =
  | { pull: true; firstWave: boolean }
  | { pull: false; reason: WaitReason };

interface NodeState {
  name: string;
  lastSeen: number;
  /** Leases held. */
  leases: number;
  /** First-wave leases held. */
  seeds: number;
  /** Counted in the seed histogram (heard from within a lease). */
  live: boolean;
}

interface ImageState {
  /** A small number, part of lease keys. */
  id: number;
  name: string;
  registry: RegistryState;
  holders: NodeBitset;
  /** Leases on this image. */
  pulling: number;
  /** When some node first asked for it while no node had it. */
  firstWantedAt: number;
  /** Per node number: when it was last told to wait (0: not waiting). */
  waitingSince: Float64Array;
}

interface RegistryState {
  name: string;
  aimd: AimdBound;
  /** Per node number: leases on this registry's images. */
  nodeLeases: Map<number, number>;
  rateLimited: number;
}

interface Lease {
  node: number;
  image: ImageState;
  firstWave: boolean;
  expiresAt: number;
}

/** Decides, per node and image, whether to pull now or wait. */
export class WaveCoordinator {
  readonly #firstWave: number;
  readonly #fanout: number;
  readonly #maxNodesPulling: number;
  readonly #leaseMs: number;
  readonly #spreadWaitMs: number;
  readonly #aimd: AimdBoundOptions;
  readonly #clock: Pick<Clock, "now">;
  readonly #nodeIds = new Map<string, number>();
  readonly #nodes: NodeState[] = [];
  readonly #images = new Map<string, ImageState>();
  readonly #registries = new Map<string, RegistryState>();
  readonly #leases = new Map<number, Lease>();
  /** Live nodes by how many first-wave leases they hold. */
  readonly #seedHistogram: number[] = [];
  #nodesPulling = 0;
  #nextSweep = 0;
  #decisions = 0;

  /** Creates a coordinator that knows no node and no image yet. */
  constructor(options: WaveCoordinatorOptions = {}) {
    this.#firstWave = positive(options.firstWave ?? 1, "firstWave");
    this.#fanout = positive(options.fanout ?? 4, "fanout");
    this.#maxNodesPulling = options.maxNodesPulling ?? 0;
    this.#leaseMs = positive(options.leaseMs ?? 30_000, "leaseMs");
    this.#spreadWaitMs = options.spreadWaitMs ?? 2_000;
    this.#aimd = options.aimd ?? {};
    this.#clock = options.clock ?? systemClock;
  }

  /** How many nodes it has heard from. */
  get nodes(): number {
    return this.#nodes.length;
  }

  /** How many admission decisions were made. */
  get decisions(): number {
    return this.#decisions;
  }

  /**
   * Asks whether `node` may pull `image` now. A node already admitted is admitted again (and its
   * lease renewed); one told to wait should ask again a little later.
   */
  admit(node: string, image: string): Decision {
    const now = this.#clock.now();
    this.#sweep(now);
    this.#decisions++;
    const id = this.#touch(node, now);
    const img = this.#image(image);
    const held = this.#leases.get(leaseKey(id, img));
    if (held) {
      held.expiresAt = now + this.#leaseMs;
      return { pull: true, firstWave: held.firstWave };
    }
    // It is on the node already (pull policy Always): a pull asks only the manifest.
    if (img.holders.has(id)) return { pull: true, firstWave: false };
    if (img.holders.size === 0 && img.firstWantedAt === 0) img.firstWantedAt = now;
    const reason = this.#waitReason(id, img, now);
    if (reason) {
      img.waitingSince = setAt(img.waitingSince, id, now);
      return { pull: false, reason };
    }
    const firstWave = img.holders.size === 0;
    this.#grant(id, img, firstWave, now);
    return { pull: true, firstWave };
  }

  /**
   * Renews `node`'s lease on `image` because its pull progressed. A node pulling without a lease
   * (it expired, or the coordinator restarted) gets one back, beyond the bounds: it is pulling
   * anyway, and counting it keeps the others from piling on.
   */
  renew(node: string, image: string): void {
    const now = this.#clock.now();
    const id = this.#touch(node, now);
    const img = this.#image(image);
    const held = this.#leases.get(leaseKey(id, img));
    if (held) held.expiresAt = now + this.#leaseMs;
    else this.#grant(id, img, img.holders.size === 0, now);
  }

  /**
   * Records that `image` is on `node`: pulled (which raises its registry's bound after a rate
   * limit) or found present. Frees the node's slot.
   */
  landed(node: string, image: string, options: { pulled: boolean }): void {
    const now = this.#clock.now();
    const id = this.#touch(node, now);
    const img = this.#image(image);
    this.#release(id, img);
    img.holders.add(id);
    clearAt(img.waitingSince, id);
    if (options.pulled) img.registry.aimd.succeeded();
  }

  /**
   * Records that `node`'s pull of `image` failed and frees its slot; a rate limit
   * (`rateLimited`) also cuts the registry's bound.
   */
  failed(node: string, image: string, options: { rateLimited: boolean }): void {
    const now = this.#clock.now();
    const id = this.#touch(node, now);
    const img = this.#image(image);
    const pullingNodes = img.registry.nodeLeases.size;
    this.#release(id, img);
    if (options.rateLimited) {
      img.registry.rateLimited++;
      img.registry.aimd.rateLimited(pullingNodes, now);
    }
  }

  /**
   * Takes what a node reports after the coordinator (re)started: the images it has and those it
   * is pulling. Repeating a report changes nothing.
   */
  restore(node: string, report: { have: readonly string[]; pulling: readonly string[] }): void {
    const now = this.#clock.now();
    const id = this.#touch(node, now);
    for (const image of report.have) {
      const img = this.#image(image);
      this.#release(id, img);
      img.holders.add(id);
      clearAt(img.waitingSince, id);
    }
    for (const image of report.pulling) this.renew(node, image);
  }

  /** The picture: per image who has, pulls and waits for it; per registry its bound. */
  snapshot(): WavesSnapshot {
    const now = this.#clock.now();
    this.#sweep(now, true);
    const images: ImageWaves[] = [];
    for (const img of this.#images.values()) {
      let waiting = 0;
      for (const since of img.waitingSince) if (since > 0 && now - since < this.#leaseMs) waiting++;
      images.push({
        image: img.name,
        registry: img.registry.name,
        have: img.holders.size,
        pulling: img.pulling,
        waiting,
      });
    }
    const registries = [...this.#registries.values()].map((r) => ({
      registry: r.name,
      bound: Number.isFinite(r.aimd.bound) ? r.aimd.bound : null,
      nodesPulling: r.nodeLeases.size,
      rateLimited: r.rateLimited,
    }));
    return {
      firstWave: this.#firstWave,
      fanout: this.#fanout,
      maxNodesPulling: this.#maxNodesPulling,
      nodes: this.#nodes.length,
      nodesPulling: this.#nodesPulling,
      decisions: this.#decisions,
      images: images.sort((a, b) => a.image.localeCompare(b.image)),
      registries: registries.sort((a, b) => a.registry.localeCompare(b.registry)),
    };
  }

  #waitReason(id: number, img: ImageState, now: number): WaitReason | undefined {
    const node = this.#nodes[id];
    if (img.holders.size === 0) {
      if (img.pulling >= this.#firstWave) return "first-wave";
      if (node.seeds > 0) {
        const patience = this.#spreadWaitMs * (node.seeds > this.#minSeeds() ? 2 : 1);
        if (now - img.firstWantedAt < patience) return "spreading";
      }
    } else if (img.pulling >= img.holders.size * this.#fanout) {
      return "fanout";
    }
    if (node.leases === 0 && this.#maxNodesPulling > 0) {
      if (this.#nodesPulling >= this.#maxNodesPulling) return "max-nodes-pulling";
    }
    const registry = img.registry;
    if (!registry.nodeLeases.has(id) && registry.nodeLeases.size >= registry.aimd.bound) {
      return "registry-limit";
    }
    return undefined;
  }

  #grant(id: number, img: ImageState, firstWave: boolean, now: number): void {
    const node = this.#nodes[id];
    const expiresAt = now + this.#leaseMs;
    this.#leases.set(leaseKey(id, img), { node: id, image: img, firstWave, expiresAt });
    img.pulling++;
    clearAt(img.waitingSince, id);
    if (node.leases++ === 0) this.#nodesPulling++;
    if (firstWave) this.#setSeeds(node, node.seeds + 1);
    const leases = img.registry.nodeLeases;
    leases.set(id, (leases.get(id) ?? 0) + 1);
  }

  #release(id: number, img: ImageState): void {
    const key = leaseKey(id, img);
    const lease = this.#leases.get(key);
    if (!lease) return;
    this.#leases.delete(key);
    img.pulling--;
    const node = this.#nodes[id];
    if (--node.leases === 0) this.#nodesPulling--;
    if (lease.firstWave) this.#setSeeds(node, node.seeds - 1);
    const leases = img.registry.nodeLeases;
    const left = leases.get(id)! - 1;
    if (left === 0) leases.delete(id);
    else leases.set(id, left);
  }

  /** Expires leases and forgets silent nodes, at most four times per lease period. */
  #sweep(now: number, force = false): void {
    if (!force && now < this.#nextSweep) return;
    this.#nextSweep = now + this.#leaseMs / 4;
    for (const lease of [...this.#leases.values()]) {
      if (lease.expiresAt <= now) this.#release(lease.node, lease.image);
    }
    for (const node of this.#nodes) {
      if (node.live && now - node.lastSeen > this.#leaseMs) {
        node.live = false;
        this.#seedHistogram[node.seeds]--;
      }
    }
  }

  #touch(name: string, now: number): number {
    let id = this.#nodeIds.get(name);
    if (id === undefined) {
      id = this.#nodes.length;
      this.#nodeIds.set(name, id);
      this.#nodes.push({ name, lastSeen: now, leases: 0, seeds: 0, live: false });
    }
    const node = this.#nodes[id];
    node.lastSeen = now;
    if (!node.live) {
      node.live = true;
      this.#seedHistogram[node.seeds] = (this.#seedHistogram[node.seeds] ?? 0) + 1;
    }
    return id;
  }

  #setSeeds(node: NodeState, seeds: number): void {
    if (node.live) {
      this.#seedHistogram[node.seeds]--;
      this.#seedHistogram[seeds] = (this.#seedHistogram[seeds] ?? 0) + 1;
    }
    node.seeds = seeds;
  }

  #minSeeds(): number {
    const index = this.#seedHistogram.findIndex((count) => count > 0);
    return index === -1 ? 0 : index;
  }

  #image(name: string): ImageState {
    let img = this.#images.get(name);
    if (!img) {
      img = {
        name,
        registry: this.#registry(registryOf(name)),
        holders: new NodeBitset(),
        pulling: 0,
        firstWantedAt: 0,
        waitingSince: new Float64Array(0),
        id: this.#images.size,
      };
      this.#images.set(name, img);
    }
    return img;
  }

  #registry(name: string): RegistryState {
    let registry = this.#registries.get(name);
    if (!registry) {
      registry = { name, aimd: new AimdBound(this.#aimd), nodeLeases: new Map(), rateLimited: 0 };
      this.#registries.set(name, registry);
    }
    return registry;
  }
}

function leaseKey(node: number, image: ImageState): number {
  return node * 2 ** 21 + image.id;
}

function positive(value: number, name: string): number {
  if (!(value >= 1) || !Number.isFinite(value)) {
    throw new RangeError(`WaveCoordinator: ${name} must be 1 or more, not ${value}`);
  }
  return value;
}

function setAt(array: Float64Array, index: number, value: number): Float64Array {
  if (index >= array.length) {
    const grown = new Float64Array(Math.max(index + 1, array.length * 2, 16));
    grown.set(array);
    array = grown;
  }
  array[index] = value;
  return array;
}

function clearAt(array: Float64Array, index: number): void {
  if (index < array.length) array[index] = 0;
}
