import assert from "node:assert/strict";
import { FakeClock } from "../../testing/fake_clock.ts";
import { type Decision, WaveCoordinator, type WaveCoordinatorOptions } from "./coordinator.ts";

const APP = "registry.example/app:1";
const DB = "registry.example/db:1";
const WEB = "registry.example/web:1";
const OTHER = "other.example/tool:1";

function setup(options: WaveCoordinatorOptions = {}) {
  const clock = new FakeClock();
  const waves = new WaveCoordinator({ clock, ...options });
  const advance = (ms: number) => clock.run(clock.sleep(ms));
  return { clock, waves, advance };
}

const PULL_FIRST: Decision = { pull: true, firstWave: true };
const PULL: Decision = { pull: true, firstWave: false };
const wait = (reason: string) => ({ pull: false, reason });

function nodes(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `node-${i}`);
}

Deno.test("one node pulls an image first; the others wait for the first wave", () => {
  const { waves } = setup();
  assert.deepEqual(waves.admit("node-a", APP), PULL_FIRST);
  assert.deepEqual(waves.admit("node-b", APP), wait("first-wave"));
  assert.deepEqual(waves.admit("node-a", APP), PULL_FIRST, "asking again renews");
  const image = waves.snapshot().images[0];
  assert.deepEqual(image, {
    image: APP,
    registry: "registry.example",
    have: 0,
    pulling: 1,
    waiting: 1,
  });
});

Deno.test("--first-wave 2 lets two nodes pull from the registry", () => {
  const { waves } = setup({ firstWave: 2 });
  const [a, b, c] = nodes(3);
  assert.deepEqual(waves.admit(a, APP), PULL_FIRST);
  assert.deepEqual(waves.admit(b, APP), PULL_FIRST);
  assert.deepEqual(waves.admit(c, APP), wait("first-wave"));
});

Deno.test("the wave grows by fanout per node that has the image", () => {
  const { waves } = setup({ fanout: 2 });
  const all = nodes(10);
  const admitted = () => all.filter((n) => waves.admit(n, APP).pull);
  assert.deepEqual(admitted(), ["node-0"]);
  waves.landed("node-0", APP, { pulled: true });
  // node-0 has it: 1 × 2 may pull.
  assert.deepEqual(admitted(), ["node-0", "node-1", "node-2"], "node-0 has it: it may ask again");
  waves.landed("node-1", APP, { pulled: true });
  waves.landed("node-2", APP, { pulled: true });
  // 3 have it: up to 6 pull at once.
  assert.deepEqual(admitted(), nodes(9));
  assert.deepEqual(waves.admit("node-9", APP), wait("fanout"));
  const image = waves.snapshot().images[0];
  assert.equal(image.have, 3);
  assert.equal(image.pulling, 6);
  assert.equal(image.waiting, 1);
});

Deno.test("a seed that stops renewing loses its slot after the lease; progress keeps it", async () => {
  const { waves, advance } = setup({ leaseMs: 30_000 });
  assert.deepEqual(waves.admit("seed", APP), PULL_FIRST);
  await advance(20_000);
  waves.renew("seed", APP);
  await advance(20_000);
  assert.deepEqual(waves.admit("other", APP), wait("first-wave"), "renewed 20s ago");
  await advance(10_001);
  assert.deepEqual(waves.admit("other", APP), PULL_FIRST, "the dead seed's lease expired");
  assert.deepEqual(waves.snapshot().images[0].pulling, 1);
});

Deno.test("a node that renews without a lease gets it back, beyond the bound", async () => {
  const { waves, advance } = setup({ leaseMs: 1_000 });
  waves.admit("a", APP);
  await advance(1_001);
  assert.deepEqual(waves.admit("b", APP), PULL_FIRST);
  waves.renew("a", APP);
  assert.equal(waves.snapshot().images[0].pulling, 2);
});

Deno.test("a node already seeding leaves the next first wave to a node seeding nothing", async () => {
  const { waves, advance } = setup({ spreadWaitMs: 2_000 });
  assert.deepEqual(waves.admit("a", APP), PULL_FIRST);
  assert.deepEqual(waves.admit("a", DB), wait("spreading"), "b may start a moment later");
  assert.deepEqual(waves.admit("b", DB), PULL_FIRST);
  assert.deepEqual(waves.admit("a", WEB), wait("spreading"));
  await advance(2_000);
  assert.deepEqual(waves.admit("a", WEB), PULL_FIRST, "nobody seeding less took it in time");
  // a seeds 2, b seeds 1: a waits twice as long for b.
  const next = "registry.example/next:1";
  assert.deepEqual(waves.admit("a", next), wait("spreading"));
  await advance(2_000);
  assert.deepEqual(waves.admit("a", next), wait("spreading"));
  await advance(2_000);
  assert.deepEqual(waves.admit("a", next), PULL_FIRST);
});

Deno.test("a lone node seeds every image, each after the spread wait", async () => {
  const { waves, advance } = setup({ spreadWaitMs: 2_000 });
  assert.deepEqual(waves.admit("a", APP), PULL_FIRST);
  assert.deepEqual(waves.admit("a", DB), wait("spreading"));
  assert.deepEqual(waves.admit("a", WEB), wait("spreading"));
  await advance(2_000);
  assert.deepEqual(waves.admit("a", DB), PULL_FIRST);
  assert.deepEqual(waves.admit("a", WEB), PULL_FIRST);
});

Deno.test("a node silent for a lease no longer counts as seeding less", async () => {
  const { waves, advance } = setup({ leaseMs: 10_000, spreadWaitMs: 6_000 });
  waves.admit("a", APP);
  waves.admit("gone", WEB);
  waves.landed("gone", WEB, { pulled: true });
  // gone seeds nothing now: a waits 12 s for it.
  assert.deepEqual(waves.admit("a", DB), wait("spreading"));
  await advance(9_000);
  waves.renew("a", APP);
  await advance(2_000);
  // gone was last heard 11 s ago: a is the least seeding node left, and waits only 6 s.
  assert.deepEqual(waves.admit("a", DB), PULL_FIRST);
});

Deno.test("--max-nodes-pulling bounds nodes, not images", () => {
  const { waves } = setup({ maxNodesPulling: 2, spreadWaitMs: 0 });
  assert.deepEqual(waves.admit("a", APP), PULL_FIRST);
  assert.deepEqual(waves.admit("b", DB), PULL_FIRST);
  assert.deepEqual(waves.admit("c", WEB), wait("max-nodes-pulling"));
  assert.deepEqual(waves.admit("a", WEB), PULL_FIRST, "a pulls already");
  waves.landed("b", DB, { pulled: true });
  assert.deepEqual(waves.admit("c", DB), PULL);
  assert.equal(waves.snapshot().nodesPulling, 2);
});

Deno.test("a 429 halves the registry's bound, successes raise it one by one", async () => {
  const { waves, advance } = setup({ fanout: 100 });
  waves.admit("seed", APP);
  waves.landed("seed", APP, { pulled: true });
  for (const node of nodes(8)) assert.deepEqual(waves.admit(node, APP), PULL);
  waves.failed("node-0", APP, { rateLimited: true });
  waves.failed("node-1", APP, { rateLimited: true }); // the same burst
  const bound = () => waves.snapshot().registries.find((r) => r.registry === "registry.example");
  let registry = bound();
  assert.deepEqual(registry, {
    registry: "registry.example",
    bound: 4,
    nodesPulling: 6,
    rateLimited: 2,
  });
  assert.deepEqual(waves.admit("node-0", APP), wait("registry-limit"));
  assert.deepEqual(waves.admit("x", OTHER), PULL_FIRST, "another registry is not bound");
  for (const node of nodes(8).slice(2)) waves.landed(node, APP, { pulled: true });
  registry = bound();
  assert.equal(registry?.bound, 10);
  assert.deepEqual(waves.admit("node-0", APP), PULL);
  await advance(5_000);
  waves.failed("node-0", APP, { rateLimited: true });
  assert.equal(bound()?.bound, 1, "min(bound, 1 pulling) / 2, at least 1");
});

Deno.test("a restarted coordinator takes its picture from the nodes' reports", () => {
  const { waves } = setup({ fanout: 1 });
  waves.restore("a", { have: [APP], pulling: [DB] });
  waves.restore("a", { have: [APP], pulling: [DB] });
  const snapshot = waves.snapshot();
  assert.deepEqual(snapshot.images.map((i) => [i.image, i.have, i.pulling]), [
    [APP, 1, 0],
    [DB, 0, 1],
  ]);
  assert.deepEqual(waves.admit("b", DB), wait("first-wave"), "a is seeding it");
  assert.deepEqual(waves.admit("b", APP), PULL);
  assert.deepEqual(waves.admit("c", APP), wait("fanout"));
});

Deno.test("a failed pull frees the slot for the next node", () => {
  const { waves } = setup();
  waves.admit("a", APP);
  waves.failed("a", APP, { rateLimited: false });
  assert.deepEqual(waves.admit("b", APP), PULL_FIRST);
  assert.equal(waves.snapshot().registries[0].bound, null);
  assert.equal(waves.decisions, 2);
});

Deno.test("the options are checked", () => {
  assert.throws(() => new WaveCoordinator({ fanout: 0 }), /fanout must be 1 or more/);
  assert.throws(() => new WaveCoordinator({ firstWave: Number.NaN }), /firstWave/);
});

Deno.test("a failure retrying cannot fix is learned once: every waiting node may try at once", () => {
  const { waves } = setup();
  const all = nodes(100);
  assert.deepEqual(waves.admit(all[0], APP), PULL_FIRST);
  for (const node of all.slice(1)) assert.deepEqual(waves.admit(node, APP), wait("first-wave"));
  waves.failed(all[0], APP, { rateLimited: false, permanent: true });
  for (const node of all.slice(1)) assert.deepEqual(waves.admit(node, APP), PULL, node);
  assert.equal(waves.snapshot().images[0].pulling, 0, "a try that costs one 404 holds no slot");
  // Nodes renewing while they wait for their own slot take no lease for it either.
  for (const node of all.slice(1, 10)) waves.renew(node, APP);
  assert.equal(waves.snapshot().images[0].pulling, 0, "renewing a try holds no slot");
  // The image was pushed since: the first node that lands it puts it back into waves.
  waves.landed(all[1], APP, { pulled: true });
  const again = all.slice(2).filter((node) => waves.admit(node, APP).pull);
  assert.equal(again.length, 4, "1 holder × fanout 4");
});

Deno.test("a failure that retrying may fix still passes the image on one node at a time", () => {
  const { waves } = setup();
  waves.admit("a", APP);
  waves.failed("a", APP, { rateLimited: false }); // an older node: no `permanent`
  assert.deepEqual(waves.admit("b", APP), PULL_FIRST);
  assert.deepEqual(waves.admit("c", APP), wait("first-wave"));
});

Deno.test("a seed far slower than the others gets a second seed beside it", async () => {
  const { waves, advance } = setup({ spreadWaitMs: 0, hedge: { minMs: 10_000, factor: 3 } });
  for (const image of [DB, WEB, OTHER]) waves.admit(`seed-${image}`, image);
  await advance(5_000);
  for (const image of [DB, WEB, OTHER]) waves.landed(`seed-${image}`, image, { pulled: true });
  assert.deepEqual(waves.admit("slow", APP), PULL_FIRST);
  await advance(14_000);
  assert.deepEqual(waves.admit("b", APP), wait("first-wave"), "3 × the 5 s median is 15 s");
  await advance(1_000);
  assert.deepEqual(waves.admit("b", APP), PULL_FIRST, "hedged");
  assert.deepEqual(waves.admit("c", APP), wait("first-wave"), "one hedge, not more");
  waves.landed("b", APP, { pulled: true });
  assert.deepEqual(waves.admit("c", APP), PULL, "the hedge's copy feeds the fanout");
});

Deno.test("slow nodes that took every fanout slot get one more node beside them", async () => {
  const { waves, advance } = setup({ spreadWaitMs: 0, fanout: 2, hedge: { minMs: 10_000 } });
  waves.admit("seed", APP);
  waves.landed("seed", APP, { pulled: true });
  assert.deepEqual(waves.admit("slow-1", APP), PULL);
  assert.deepEqual(waves.admit("slow-2", APP), PULL);
  await advance(9_000);
  waves.renew("slow-1", APP);
  waves.renew("slow-2", APP);
  assert.deepEqual(waves.admit("b", APP), wait("fanout"));
  await advance(1_000);
  assert.deepEqual(waves.admit("b", APP), PULL, "both pulled for 10 s: one more");
  assert.deepEqual(waves.admit("c", APP), wait("fanout"), "one, not more");
  waves.landed("b", APP, { pulled: true });
  assert.deepEqual(waves.admit("c", APP), PULL, "2 holders × 2: a slot is free");
});

Deno.test("before any seed landed, a seed is hedged after the longest wait", async () => {
  const { waves, advance } = setup({ hedge: { maxMs: 60_000 } });
  waves.admit("slow", APP);
  await advance(59_000);
  waves.renew("slow", APP);
  assert.deepEqual(waves.admit("b", APP), wait("first-wave"));
  await advance(1_000);
  assert.deepEqual(waves.admit("b", APP), PULL_FIRST);
});

Deno.test("a full report replaces what the node was known to have and to pull", () => {
  const { waves } = setup({ fanout: 1 });
  waves.restore("a", { have: [APP, DB], pulling: [WEB] });
  // Reimaged under the same name: its new run reports nothing yet.
  waves.restore("a", { have: [], pulling: [] });
  assert.deepEqual(waves.snapshot().images, [], "no node has or pulls them: forgotten");
  waves.landed("b", APP, { pulled: true });
  assert.deepEqual(waves.admit("c", APP), PULL);
  assert.deepEqual(waves.admit("a", APP), wait("fanout"), "a is no holder, it waits its turn");
});

Deno.test("an admitted node that gives its lease back frees the slot at once", () => {
  const { waves } = setup();
  waves.admit("a", APP);
  waves.release("a", APP);
  assert.deepEqual(waves.admit("b", APP), PULL_FIRST);
});

Deno.test("images and nodes nobody needs any more are forgotten; bounds refuse the rest", async () => {
  const { waves, advance } = setup({ leaseMs: 10_000, limits: { maxImages: 2, maxNodes: 2 } });
  waves.admit("a", APP);
  waves.admit("b", DB);
  assert.throws(() => waves.assertRoom("a", [WEB]), /knows 2 images .* limit of 2/);
  assert.throws(() => waves.assertRoom("c", []), /knows 2 nodes, its limit/);
  waves.landed("a", APP, { pulled: true });
  await advance(11_000);
  // b's lease on DB lapsed and b went silent: DB and b are forgotten; a has APP, so both stay.
  const snapshot = waves.snapshot();
  assert.deepEqual(snapshot.images.map((i) => i.image), [APP]);
  assert.equal(snapshot.nodes, 1);
  waves.assertRoom("c", [WEB]);
  assert.deepEqual(waves.admit("c", WEB), PULL_FIRST);
});

Deno.test("a node silent for a day is forgotten with the images it had", async () => {
  const { waves, advance } = setup({ forgetSilentNodeMs: 86_400_000 });
  waves.landed("gone", APP, { pulled: true });
  waves.landed("here", APP, { pulled: true });
  await advance(86_000_000);
  waves.landed("here", DB, { pulled: true }); // "here" still talks
  await advance(500_000);
  const snapshot = waves.snapshot();
  assert.deepEqual(snapshot.images.map((i) => [i.image, i.have]), [[APP, 1], [DB, 1]]);
  assert.equal(snapshot.nodes, 1);
});

Deno.test("leases are kept per image: many images and nodes keep exact counts", () => {
  // Leases are kept on each image's own state: many images, each counted once.
  const { waves } = setup({ spreadWaitMs: 0, limits: { maxImages: 5_000 } });
  const images = Array.from({ length: 3_000 }, (_, i) => `registry.example/i${i}:1`);
  for (const image of images) waves.admit("a", image);
  for (const image of images.slice(0, 1_000)) waves.admit("b", image);
  const snapshot = waves.snapshot();
  assert.equal(snapshot.images.reduce((sum, i) => sum + i.pulling, 0), 3_000);
  assert.equal(snapshot.nodesPulling, 1);
});

Deno.test("by default leases run on a monotonic clock: a wall-clock step changes nothing", () => {
  const waves = new WaveCoordinator();
  const realNow = Date.now;
  try {
    waves.admit("a", APP);
    const stepped = realNow() + 3_600_000;
    Date.now = () => stepped;
    assert.deepEqual(waves.admit("b", APP), wait("first-wave"), "a's lease still holds");
  } finally {
    Date.now = realNow;
  }
});
