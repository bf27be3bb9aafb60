import assert from "node:assert/strict";
import { FakeClock } from "../../../testing/fake_clock.ts";
import { WaveCoordinator } from "../coordinator.ts";
import type { WireAdmitRequest, WireAdmitResponse } from "../protocol.ts";
import { answerAdmit } from "../server/admit_handler.ts";
import { type GateEvent, WavesGate, type WavesGateOptions } from "./waves_gate.ts";
import { WavesRefusedError } from "./waves_client.ts";

const APP = "registry.example/app:1";
const DB = "registry.example/db:1";

/** A coordinator in process, reached through the same handler as over gRPC. */
function cluster(clock: FakeClock) {
  let coordinator = new WaveCoordinator({ clock, spreadWaitMs: 0 });
  let serverId = "server-1";
  const requests: WireAdmitRequest[] = [];
  let down = false;
  const exchange = (request: WireAdmitRequest): Promise<WireAdmitResponse> => {
    requests.push(structuredClone(request));
    if (down) return Promise.reject(new Error("connection refused"));
    const decisions = answerAdmit(coordinator, request);
    return Promise.resolve({ decisions, server_id: serverId, retry_after_ms: 1_000 });
  };
  return {
    get coordinator() {
      return coordinator;
    },
    requests,
    exchange,
    setDown: (value: boolean) => down = value,
    restart: () => {
      coordinator = new WaveCoordinator({ clock, spreadWaitMs: 0 });
      serverId = "server-2";
    },
  };
}

function gate(
  clock: FakeClock,
  options: Partial<WavesGateOptions> & Pick<WavesGateOptions, "exchange">,
) {
  const events: GateEvent[] = [];
  const g = new WavesGate({
    node: "me",
    maxWaitMs: 30_000,
    clock,
    onEvent: (e) => events.push(e),
    ...options,
  });
  return { gate: g, events };
}

const never = new AbortController().signal;

Deno.test("an image that must wait is asked again; the others go ahead meanwhile", async () => {
  const clock = new FakeClock();
  const c = cluster(clock);
  c.coordinator.admit("seed", APP); // another node seeds APP
  const { gate: g, events } = gate(clock, { exchange: c.exchange });
  const start = clock.now();
  const app = g.admit(APP, never).then(() => clock.now() - start);
  await clock.run(g.admit(DB, never));
  assert.equal(c.requests.length, 1, "both questions in one exchange");
  assert.deepEqual(c.requests[0].want, [APP, DB]);
  assert.deepEqual(events.filter((e) => e.type === "waiting"), [
    { type: "waiting", image: APP, reason: "first-wave" },
  ]);
  c.coordinator.landed("seed", APP, { pulled: true });
  assert.equal(await clock.run(app), 1_000, "admitted at the next exchange");
});

Deno.test("news reaches the coordinator: landed images count as holders", async () => {
  const clock = new FakeClock();
  const c = cluster(clock);
  const { gate: g } = gate(clock, { exchange: c.exchange });
  await clock.run(g.admit(APP, never));
  g.landed(APP, { pulled: true });
  g.landed(DB, { pulled: false });
  await clock.run(g.flush(5_000));
  const have = c.coordinator.snapshot().images.map((i) => [i.image, i.have, i.pulling]);
  assert.deepEqual(have, [[APP, 1, 0], [DB, 1, 0]]);
});

Deno.test("an unreachable coordinator holds an image for the bounded wait, then lets go", async () => {
  const clock = new FakeClock();
  const c = cluster(clock);
  c.setDown(true);
  const { gate: g, events } = gate(clock, { exchange: c.exchange, maxWaitMs: 10_000 });
  const start = clock.now();
  await clock.run(g.admit(APP, never));
  const waited = clock.now() - start;
  assert.ok(waited >= 10_000 && waited <= 11_000, `waited ${waited} ms`);
  assert.equal(events.at(-1)?.type, "unreachable");
  const again = clock.now();
  await clock.run(g.admit(DB, never));
  assert.equal(clock.now(), again, "while it is down, nothing waits");
});

Deno.test("a coordinator that never answers counts as unreachable", async () => {
  const clock = new FakeClock();
  const hang = (_: WireAdmitRequest, signal: AbortSignal) =>
    new Promise<WireAdmitResponse>((_, reject) =>
      signal.addEventListener("abort", () => reject(signal.reason))
    );
  const { gate: g, events } = gate(clock, {
    exchange: hang,
    maxWaitMs: 8_000,
    callTimeoutMs: 5_000,
  });
  const start = clock.now();
  await clock.run(g.admit(APP, never));
  assert.ok(clock.now() - start <= 8_000 + 5_000 + 1_000);
  const unreachable = events.find((e) => e.type === "unreachable");
  assert.match(unreachable?.type === "unreachable" ? unreachable.error : "", /no answer within 5s/);
});

Deno.test("a server without waves is asked once, then never again", async () => {
  const clock = new FakeClock();
  let calls = 0;
  const refuse = () => {
    calls++;
    return Promise.reject(new WavesRefusedError("no waves here", 12));
  };
  const { gate: g, events } = gate(clock, { exchange: refuse });
  await clock.run(g.admit(APP, never));
  await clock.run(g.admit(DB, never));
  g.landed(APP, { pulled: true });
  assert.equal(calls, 1);
  assert.deepEqual(events, [{ type: "refused", error: "no waves here" }]);
});

Deno.test("a restarted coordinator gets the node's full picture", async () => {
  const clock = new FakeClock();
  const c = cluster(clock);
  const { gate: g, events } = gate(clock, { exchange: c.exchange });
  await clock.run(g.admit(APP, never));
  g.landed(APP, { pulled: true });
  await clock.run(g.admit(DB, never));
  c.restart();
  g.progressed(DB);
  await clock.run(clock.sleep(3_000));
  const full = c.requests.find((r) => r.full_report && c.requests.indexOf(r) > 0);
  assert.deepEqual(full?.pulled, [APP]);
  assert.deepEqual(full?.progressed, [DB]);
  const picture = c.coordinator.snapshot().images.map((i) => [i.image, i.have, i.pulling]);
  assert.deepEqual(picture, [[APP, 1, 0], [DB, 0, 1]]);
  assert.ok(events.some((e) => e.type === "reachable" && e.restarted));
  g.close();
});

Deno.test("only images that progressed are renewed, unless progress cannot be watched", async () => {
  for (const renewWithoutProgress of [false, true]) {
    const clock = new FakeClock();
    const c = cluster(clock);
    const { gate: g } = gate(clock, { exchange: c.exchange, renewWithoutProgress });
    await clock.run(g.admit(APP, never));
    g.started(APP);
    await clock.run(clock.sleep(2_500));
    const renewals = c.requests.slice(1).map((r) => r.progressed.length);
    assert.ok(renewals.length >= 2);
    assert.ok(renewals.every((n) => n === (renewWithoutProgress ? 1 : 0)), String(renewals));
    g.close();
  }
});

Deno.test("a waiting image gives up when its signal aborts", async () => {
  const clock = new FakeClock();
  const c = cluster(clock);
  c.coordinator.admit("seed", APP);
  const { gate: g } = gate(clock, { exchange: c.exchange });
  const stop = new AbortController();
  const waiting = g.admit(APP, stop.signal);
  clock.sleep(5_000).then(() => stop.abort(new Error("overall timeout")));
  await assert.rejects(clock.run(waiting), /overall timeout/);
  g.close();
});

Deno.test("an admitted image keeps its lease until its pull starts, and gives it back if it never does", async () => {
  const clock = new FakeClock();
  const c = cluster(clock);
  const { gate: g } = gate(clock, { exchange: c.exchange });
  const run = new AbortController();
  await clock.run(g.admit(APP, run.signal));
  // Waiting for the node's own slot (or its credential plugin): renewed at every exchange.
  await clock.run(clock.sleep(45_000));
  assert.ok(c.requests.slice(1).every((r) => r.progressed.includes(APP)));
  assert.equal(c.coordinator.snapshot().images[0].pulling, 1, "still leased after 45 s");
  run.abort(new Error("interrupted")); // the run stops before the pull starts
  await clock.run(g.flush(5_000));
  assert.deepEqual(c.requests.at(-1)?.released, [APP]);
  assert.deepEqual(c.coordinator.admit("other", APP), { pull: true, firstWave: true });
  g.close();
});

Deno.test("a failure retrying cannot fix reaches the coordinator as permanent", async () => {
  const clock = new FakeClock();
  const c = cluster(clock);
  c.coordinator.admit("seed", APP);
  const { gate: g } = gate(clock, { exchange: c.exchange });
  const waiting = g.admit(APP, never);
  await clock.run(clock.sleep(10));
  c.coordinator.failed("seed", APP, { rateLimited: false, permanent: true });
  await clock.run(waiting);
  g.failed(APP, { rateLimited: false, permanent: true });
  await clock.run(g.flush(5_000));
  assert.deepEqual(c.requests.at(-1)?.failed, [{
    image: APP,
    rate_limited: false,
    permanent: true,
  }]);
  g.close();
});

Deno.test("the final flush waits for a slow answer past its patience, not for a gone coordinator", async (t) => {
  await t.step("slow: the answer comes after 4 s, and the news counts", async () => {
    const clock = new FakeClock();
    const c = cluster(clock);
    const { gate: g } = gate(clock, {
      exchange: (request, signal) => clock.sleep(4_000, signal).then(() => c.exchange(request)),
    });
    g.landed(APP, { pulled: true });
    const start = clock.now();
    await clock.run(g.flush(7_000, 2_000));
    assert.equal(clock.now() - start >= 4_000, true, "waited for the answer");
    const have = c.coordinator.snapshot().images.map((i) => [i.image, i.have]);
    assert.deepEqual(have, [[APP, 1]]);
  });
  await t.step("gone: refused connections stop the flush at its patience", async () => {
    const clock = new FakeClock();
    const c = cluster(clock);
    c.setDown(true);
    const { gate: g } = gate(clock, { exchange: c.exchange });
    g.landed(APP, { pulled: true });
    const start = clock.now();
    await clock.run(g.flush(7_000, 2_000));
    const waited = clock.now() - start;
    assert.ok(waited >= 2_000 && waited < 2_100, `stopped after ${waited} ms`);
  });
});

Deno.test("the final flush is not held back by the coordinator's pacing", async (t) => {
  for (const when of ["while the gate waits for its next exchange", "during an exchange"]) {
    await t.step(`flush ${when}`, async () => {
      const clock = new FakeClock();
      const c = cluster(clock);
      let duringExchange = () => {};
      const { gate: g } = gate(clock, {
        // A busy coordinator: answers in 500 ms and asks for the next exchange in 10 s.
        exchange: async (request, signal) => {
          duringExchange();
          duringExchange = () => {};
          await clock.sleep(500, signal);
          return { ...await c.exchange(request), retry_after_ms: 10_000 };
        },
      });
      let flushed: Promise<void> | undefined;
      const start = clock.now();
      const landAndFlush = () => {
        g.landed(DB, { pulled: true });
        flushed = g.flush(7_000, 2_000);
      };
      if (when === "during an exchange") duringExchange = landAndFlush;
      await clock.run(g.admit(APP, never));
      g.started(APP);
      if (!flushed) landAndFlush();
      await clock.run(flushed!);
      assert.ok(clock.now() - start < 2_000, `flushed after ${clock.now() - start} ms`);
      const have = c.coordinator.snapshot().images.map((i) => [i.image, i.have]);
      assert.deepEqual(have.filter(([image]) => image === DB), [[DB, 1]]);
    });
  }
});
