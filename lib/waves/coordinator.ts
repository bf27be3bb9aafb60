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
 * An admission is a lease that the node renews while it waits for its own slot and then by its
 * pull's progress, and gives back when it will not pull; a node that dies or stalls stops
 * renewing and its slot frees after `leaseMs`. When every node pulling an image has pulled far
 * longer than seeds usually take, one more node may pull it beside them ({@linkcode SeedHedge}):
 * a second seed, or one node past the fanout. A failure retrying cannot fix (the
 * registry has no such image, or refuses it) is learned once: while nodes keep reporting it,
 * every node asking for the image is admitted at once, outside the waves, and each learns it
 * from the registry in one cheap request. The coordinator keeps everything in memory and is
 * rebuilt after a restart from what nodes report ({@linkcode WaveCoordinator.restore}); a node's
 * full report replaces what it was known to have.
 *
 * Bounded: images and nodes known at once ({@linkcode WavesLimits}); an image no node wants,
 * pulls or has is forgotten, and so is a node silent for a lease that holds nothing. Time comes
 * from an injected clock (monotonic by default); there is no I/O. Memory: images × nodes / 8
 * bytes for who has what, plus one small record per lease, waiting node, node, image and
 * registry.
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
import { type Clock, systemClock } from "../core/clock.ts";
import { AimdBound, type AimdBoundOptions } from "./aimd_bound.ts";
import { DEFAULT_WAVES_LIMITS, WavesLimitError, type WavesLimits } from "./limits.ts";
import { NodeBitset } from "./node_bitset.ts";
import { SeedHedge, type SeedHedgeOptions } from "./seed_hedge.ts";
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
   * A node silent this long is forgotten with the images it had (it left the cluster, or came
   * back under another name), so that holders and nodes known do not grow forever.
   * @default {86_400_000} (a day)
   */
  forgetSilentNodeMs?: number;
  /**
   * How long an image with no holder waits for a node seeding nothing before a node already
   * seeding another image may seed it too (twice this while a live node seeds fewer).
   * @default {2_000}
   */
  spreadWaitMs?: number;
  /** When a slow seed gets a second seed beside it. */
  hedge?: SeedHedgeOptions;
  /** How each registry's bound reacts to rate limits. */
  aimd?: AimdBoundOptions;
  /** How much it holds at most; each field defaults as in {@linkcode DEFAULT_WAVES_LIMITS}. */
  limits?: Partial<WavesLimits>;
  /**
   * Time; only `now()` is used, and only for durations.
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
  id: number;
  name: string;
  lastSeen: number;
  /** Images it holds a lease on. */
  leased: Set<ImageState>;
  /** Images it has. */
  held: Set<ImageState>;
  /** First-wave leases held. */
  seeds: number;
  /** Counted in the seed histogram (heard from within a lease). */
  live: boolean;
}

interface ImageState {
  name: string;
  registry: RegistryState;
  holders: NodeBitset;
  /** Per node number: its lease on this image. */
  leases: Map<number, Lease>;
  /** When some node first asked for it while no node had it. */
  firstWantedAt: number;
  /** Per node number: when it was last told to wait (kept while the node is heard from). */
  waiting: Map<number, number>;
  /** When a node last reported a failure retrying cannot fix (0: none). */
  failedAt: number;
}

interface RegistryState {
  name: string;
  aimd: AimdBound;
  /** Per node number: leases on this registry's images. */
  nodeLeases: Map<number, number>;
  rateLimited: number;
  /** Images known from it. */
  images: number;
}

interface Lease {
  node: number;
  image: ImageState;
  firstWave: boolean;
  grantedAt: number;
  expiresAt: number;
}

/** Decides, per node and image, whether to pull now or wait. */
export class WaveCoordinator {
  readonly #firstWave: number;
  readonly #fanout: number;
  readonly #maxNodesPulling: number;
  readonly #leaseMs: number;
  readonly #spreadWaitMs: number;
  readonly #forgetSilentNodeMs: number;
  readonly #aimd: AimdBoundOptions;
  readonly #limits: WavesLimits;
  readonly #hedge: SeedHedge;
  readonly #clock: Pick<Clock, "now">;
  readonly #nodeIds = new Map<string, number>();
  readonly #nodes: (NodeState | undefined)[] = [];
  readonly #freeIds: number[] = [];
  readonly #images = new Map<string, ImageState>();
  readonly #registries = new Map<string, RegistryState>();
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
    this.#forgetSilentNodeMs = options.forgetSilentNodeMs ?? 86_400_000;
    this.#aimd = options.aimd ?? {};
    this.#limits = { ...DEFAULT_WAVES_LIMITS, ...options.limits };
    this.#hedge = new SeedHedge(options.hedge);
    this.#clock = options.clock ?? systemClock;
  }

  /** How many nodes it knows now. */
  get nodes(): number {
    return this.#nodeIds.size;
  }

  /** How many images it knows now. */
  get images(): number {
    return this.#images.size;
  }

  /** How many admission decisions were made. */
  get decisions(): number {
    return this.#decisions;
  }

  /** Its bounds. */
  get limits(): Readonly<WavesLimits> {
    return this.#limits;
  }

  /**
   * Throws a {@linkcode WavesLimitError} when taking a request from `node` naming `images` would
   * make it know more images or nodes than its limits allow; call it before applying a request
   * so that a request past a bound is refused whole.
   */
  assertRoom(node: string, images: Iterable<string>): void {
    if (!this.#nodeIds.has(node)) this.#assertNodeRoom();
    const unknown = new Set<string>();
    for (const image of images) if (!this.#images.has(image)) unknown.add(image);
    this.#assertImageRoom(unknown.size);
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
    const held = img.leases.get(id);
    if (held) {
      held.expiresAt = now + this.#leaseMs;
      return { pull: true, firstWave: held.firstWave };
    }
    // It is on the node already (pull policy Always): a pull asks only the manifest.
    if (img.holders.has(id)) return { pull: true, firstWave: false };
    if (this.#knownToFail(img, now)) return this.#admitToFail(id, img);
    if (img.holders.size === 0 && img.firstWantedAt === 0) img.firstWantedAt = now;
    const reason = this.#waitReason(id, img, now);
    if (reason) {
      img.waiting.set(id, now);
      return { pull: false, reason };
    }
    const firstWave = img.holders.size === 0;
    this.#grant(id, img, firstWave, now);
    return { pull: true, firstWave };
  }

  /**
   * Renews `node`'s lease on `image`: it is waiting for its own slot or its pull progressed. A
   * node pulling without a lease (it expired, or the coordinator restarted) gets one back,
   * beyond the bounds: it is pulling anyway, and counting it keeps the others from piling on.
   */
  renew(node: string, image: string): void {
    const now = this.#clock.now();
    const id = this.#touch(node, now);
    const img = this.#image(image);
    const held = img.leases.get(id);
    if (held) held.expiresAt = now + this.#leaseMs;
    // An image others just failed for good is tried without a lease (see `admit`): none here.
    else if (!img.holders.has(id) && !this.#knownToFail(img, now)) {
      this.#grant(id, img, img.holders.size === 0, now);
    }
  }

  /** `node` will not pull `image` now after all (its run stopped): its slot frees at once. */
  release(node: string, image: string): void {
    const id = this.#touch(node, this.#clock.now());
    this.#release(id, this.#image(image));
  }

  /**
   * Records that `image` is on `node`: pulled (which raises its registry's bound after a rate
   * limit, and times a seed) or found present. Frees the node's slot.
   */
  landed(node: string, image: string, options: { pulled: boolean }): void {
    const now = this.#clock.now();
    const id = this.#touch(node, now);
    const img = this.#image(image);
    const lease = img.leases.get(id);
    if (options.pulled && lease?.firstWave) this.#hedge.landed(now - lease.grantedAt);
    this.#release(id, img);
    this.#hold(id, img);
    if (options.pulled) img.registry.aimd.succeeded();
  }

  /**
   * Records that `node`'s pull of `image` failed and frees its slot; a rate limit
   * (`rateLimited`) also cuts the registry's bound, and a failure retrying cannot fix
   * (`permanent`: not found, access denied) lets every node try the image at once.
   */
  failed(
    node: string,
    image: string,
    options: { rateLimited: boolean; permanent?: boolean },
  ): void {
    const now = this.#clock.now();
    const id = this.#touch(node, now);
    const img = this.#image(image);
    const pullingNodes = img.registry.nodeLeases.size;
    this.#release(id, img);
    if (options.permanent) img.failedAt = now;
    if (options.rateLimited) {
      img.registry.rateLimited++;
      img.registry.aimd.rateLimited(pullingNodes, now);
    }
  }

  /**
   * Takes a node's full report (its first request to this coordinator, e.g. after a restart or
   * as a new run): the images it has and those it is pulling replace what it was known to have
   * and to pull, so a node reimaged under the same name, or whose images were removed, is no
   * longer counted as having them. Repeating a report changes nothing.
   */
  restore(node: string, report: { have: readonly string[]; pulling: readonly string[] }): void {
    const now = this.#clock.now();
    const id = this.#touch(node, now);
    const state = this.#nodes[id]!;
    const have = new Set(report.have);
    const pulling = new Set(report.pulling);
    for (const img of [...state.held]) {
      if (!have.has(img.name)) {
        img.holders.delete(id);
        state.held.delete(img);
      }
    }
    for (const img of [...state.leased]) if (!pulling.has(img.name)) this.#release(id, img);
    for (const image of have) {
      const img = this.#image(image);
      this.#release(id, img);
      this.#hold(id, img);
    }
    for (const image of pulling) this.renew(node, image);
  }

  /** The picture: per image who has, pulls and waits for it; per registry its bound. */
  snapshot(): WavesSnapshot {
    const now = this.#clock.now();
    this.#sweep(now, true);
    const images: ImageWaves[] = [];
    for (const img of this.#images.values()) {
      images.push({
        image: img.name,
        registry: img.registry.name,
        have: img.holders.size,
        pulling: img.leases.size,
        waiting: img.waiting.size,
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
      nodes: this.#nodeIds.size,
      nodesPulling: this.#nodesPulling,
      decisions: this.#decisions,
      images: images.sort((a, b) => a.image.localeCompare(b.image)),
      registries: registries.sort((a, b) => a.registry.localeCompare(b.registry)),
    };
  }

  /** Nodes reported within a lease that retrying this image cannot help. */
  #knownToFail(img: ImageState, now: number): boolean {
    return img.failedAt > 0 && img.holders.size === 0 && now - img.failedAt < this.#leaseMs;
  }

  /**
   * Lets a node try an image others found missing, outside the waves: it costs the registry one
   * cheap answer, and needs no lease. Only a registry's own rate limit still holds it back.
   */
  #admitToFail(id: number, img: ImageState): Decision {
    const registry = img.registry;
    if (!registry.nodeLeases.has(id) && registry.nodeLeases.size >= registry.aimd.bound) {
      img.waiting.set(id, this.#clock.now());
      return { pull: false, reason: "registry-limit" };
    }
    img.waiting.delete(id);
    return { pull: true, firstWave: false };
  }

  #waitReason(id: number, img: ImageState, now: number): WaitReason | undefined {
    const node = this.#nodes[id]!;
    if (img.holders.size === 0) {
      const full = img.leases.size >= this.#firstWave;
      if (full && !this.#hedgeDue(img, now, this.#firstWave)) return "first-wave";
      if (node.seeds > 0) {
        const patience = this.#spreadWaitMs * (node.seeds > this.#minSeeds() ? 2 : 1);
        if (now - img.firstWantedAt < patience) return "spreading";
      }
    } else {
      const bound = img.holders.size * this.#fanout;
      if (img.leases.size >= bound && !this.#hedgeDue(img, now, bound)) return "fanout";
    }
    if (node.leased.size === 0 && this.#maxNodesPulling > 0) {
      if (this.#nodesPulling >= this.#maxNodesPulling) return "max-nodes-pulling";
    }
    const registry = img.registry;
    if (!registry.nodeLeases.has(id) && registry.nodeLeases.size >= registry.aimd.bound) {
      return "registry-limit";
    }
    return undefined;
  }

  /**
   * One more node beside a full wave (first wave or fanout, `bound` leases) whose every node has
   * pulled for too long: slow nodes that took every slot do not hold the image back.
   */
  #hedgeDue(img: ImageState, now: number, bound: number): boolean {
    if (img.leases.size >= bound + 1) return false;
    const threshold = this.#hedge.thresholdMs;
    for (const lease of img.leases.values()) {
      if (now - lease.grantedAt < threshold) return false;
    }
    return true;
  }

  #grant(id: number, img: ImageState, firstWave: boolean, now: number): void {
    const node = this.#nodes[id]!;
    const expiresAt = now + this.#leaseMs;
    img.leases.set(id, { node: id, image: img, firstWave, grantedAt: now, expiresAt });
    img.waiting.delete(id);
    if (node.leased.size === 0) this.#nodesPulling++;
    node.leased.add(img);
    if (firstWave) this.#setSeeds(node, node.seeds + 1);
    const leases = img.registry.nodeLeases;
    leases.set(id, (leases.get(id) ?? 0) + 1);
  }

  #release(id: number, img: ImageState): void {
    const lease = img.leases.get(id);
    if (!lease) return;
    img.leases.delete(id);
    const node = this.#nodes[id]!;
    node.leased.delete(img);
    if (node.leased.size === 0) this.#nodesPulling--;
    if (lease.firstWave) this.#setSeeds(node, node.seeds - 1);
    const leases = img.registry.nodeLeases;
    const left = leases.get(id)! - 1;
    if (left === 0) leases.delete(id);
    else leases.set(id, left);
  }

  #hold(id: number, img: ImageState): void {
    img.holders.add(id);
    img.waiting.delete(id);
    img.failedAt = 0;
    this.#nodes[id]!.held.add(img);
  }

  /**
   * Expires leases and waits, forgets images nobody wants, pulls or has, nodes silent for a
   * lease that hold nothing, and nodes silent for `forgetSilentNodeMs` with what they had; at
   * most four times per lease period.
   */
  #sweep(now: number, force = false): void {
    if (!force && now < this.#nextSweep) return;
    this.#nextSweep = now + this.#leaseMs / 4;
    for (const img of [...this.#images.values()]) {
      for (const lease of [...img.leases.values()]) {
        if (lease.expiresAt <= now) this.#release(lease.node, img);
      }
      for (const id of img.waiting.keys()) {
        if (now - this.#nodes[id]!.lastSeen >= this.#leaseMs) img.waiting.delete(id);
      }
      if (img.holders.size + img.leases.size + img.waiting.size === 0) this.#forgetImage(img, now);
    }
    for (const node of this.#nodes) {
      if (!node || now - node.lastSeen <= this.#leaseMs) continue;
      if (node.live) {
        node.live = false;
        this.#seedHistogram[node.seeds]--;
      }
      if (now - node.lastSeen > this.#forgetSilentNodeMs) {
        for (const img of node.held) img.holders.delete(node.id);
        node.held.clear();
      }
      if (node.leased.size === 0 && node.held.size === 0) this.#forgetNode(node);
    }
  }

  #forgetImage(img: ImageState, now: number): void {
    if (this.#knownToFail(img, now)) return;
    this.#images.delete(img.name);
    const registry = img.registry;
    if (--registry.images === 0 && registry.nodeLeases.size === 0) {
      this.#registries.delete(registry.name);
    }
  }

  #forgetNode(node: NodeState): void {
    this.#nodeIds.delete(node.name);
    this.#nodes[node.id] = undefined;
    this.#freeIds.push(node.id);
  }

  #touch(name: string, now: number): number {
    let id = this.#nodeIds.get(name);
    if (id === undefined) {
      this.#assertNodeRoom();
      id = this.#freeIds.pop() ?? this.#nodes.length;
      this.#nodeIds.set(name, id);
      this.#nodes[id] = {
        id,
        name,
        lastSeen: now,
        leased: new Set(),
        held: new Set(),
        seeds: 0,
        live: false,
      };
    }
    const node = this.#nodes[id]!;
    node.lastSeen = now;
    if (!node.live) {
      node.live = true;
      this.#seedHistogram[node.seeds] = (this.#seedHistogram[node.seeds] ?? 0) + 1;
    }
    return id;
  }

  #assertNodeRoom(): void {
    if (this.#nodeIds.size < this.#limits.maxNodes) return;
    throw new WavesLimitError(
      `the coordinator knows ${this.#nodeIds.size} nodes, its limit; a node silent for the ` +
        "lease that holds nothing is forgotten, so ask again later",
      "exhausted",
    );
  }

  #assertImageRoom(unknown: number): void {
    if (this.#images.size + unknown <= this.#limits.maxImages) return;
    throw new WavesLimitError(
      `the coordinator knows ${this.#images.size} images and this request names ${unknown} ` +
        `more, past its limit of ${this.#limits.maxImages}; images no node wants, pulls or has ` +
        "are forgotten, so ask again later",
      "exhausted",
    );
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
      this.#assertImageRoom(1);
      const registry = this.#registry(registryOf(name));
      registry.images++;
      img = {
        name,
        registry,
        holders: new NodeBitset(),
        leases: new Map(),
        firstWantedAt: 0,
        waiting: new Map(),
        failedAt: 0,
      };
      this.#images.set(name, img);
    }
    return img;
  }

  #registry(name: string): RegistryState {
    let registry = this.#registries.get(name);
    if (!registry) {
      registry = {
        name,
        aimd: new AimdBound(this.#aimd),
        nodeLeases: new Map(),
        rateLimited: 0,
        images: 0,
      };
      this.#registries.set(name, registry);
    }
    return registry;
  }
}

function positive(value: number, name: string): number {
  if (!(value >= 1) || !Number.isFinite(value)) {
    throw new RangeError(`WaveCoordinator: ${name} must be 1 or more, not ${value}`);
  }
  return value;
}
