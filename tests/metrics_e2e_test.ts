/**
 * Metrics end to end: a real `aggregate-metrics` process receiving pull attempts from real
 * clients (the `MetricsSubmitter`, and `fetch --metrics-endpoint` against the real stack), restarted
 * mid-run, and its HTML report opened in a real headless browser (Debian's chromium).
 */
import assert from "node:assert/strict";
import { Logger } from "../lib/core/log.ts";
import * as grpc from "@grpc/grpc-js";
import {
  type MetricsResult,
  type MetricsResultJson,
  MetricsService,
  resultToWire,
} from "../lib/metrics/protocol.ts";
import type { MetricsSummary } from "../lib/metrics/server/summary.ts";
import { MetricsSubmitter } from "../lib/metrics/client/submitter.ts";
import { startMetricsServerProcess } from "../testing/metrics_server_process.ts";
import { jsonFetchArgs, spawnProgram } from "../testing/prefetcher_process.ts";
import { ensureDebianPackages } from "../testing/stack/packages.ts";
import { startStack, testEachContainerd } from "../testing/stack/stack.ts";
import { waitUntil } from "../testing/stack/wait_until.ts";

const quiet = new Logger({ write: () => {} });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function getJson<T>(url: string): Promise<T> {
  const response = await fetch(url);
  assert.equal(response.status, 200, `${url} answered ${response.status}`);
  return await response.json() as T;
}

function attempt(node: string, index: number): MetricsResult {
  return {
    attemptId: `${node}-${index}`,
    startedAt: Math.floor(Date.now() / 1000),
    image: `registry.test/app-${index % 10}:v1`,
    node,
    outcome: index < 10 ? "pulled" : "attempt-failed",
    attempt: index < 10 ? 1 : 2,
    durationMs: 100 + index,
    error: index < 10 ? undefined : "timeout",
    imagesTotal: 10,
  };
}

Deno.test("two nodes' submitters deliver every attempt, once, across a server restart", async () => {
  let server = await startMetricsServerProcess();
  const { grpcPort, httpPort } = server;
  const nodes = ["node-a", "node-b"];
  const submitters = nodes.map(() =>
    new MetricsSubmitter({
      endpoint: `127.0.0.1:${grpcPort}`,
      logger: quiet,
      batchWindowMs: 100,
      initialBackoffMs: 100,
      maxBackoffMs: 500,
      gracefulClose: false, // see the browser test below
    })
  );
  try {
    for (let i = 0; i < 12; i++) {
      submitters.forEach((s, n) => s.submit(attempt(nodes[n], i)));
      await sleep(20);
    }
    assert.ok(
      await waitUntil(async () =>
        (await getJson<unknown[]>(`${server.url}/metrics`)).length === 24
      ),
    );
    await server.stop("SIGKILL");
    for (let i = 12; i < 20; i++) submitters.forEach((s, n) => s.submit(attempt(nodes[n], i)));
    await sleep(300);
    server = await startMetricsServerProcess({ grpcPort, httpPort });
    for (let i = 20; i < 25; i++) submitters.forEach((s, n) => s.submit(attempt(nodes[n], i)));
    const reports = await Promise.all(submitters.map((s) => s.flush(15_000)));
    for (const report of reports) assert.deepEqual([report.delivered, report.undelivered], [25, 0]);

    const results = await getJson<MetricsResultJson[]>(`${server.url}/metrics`);
    const ids = results.map((r) => r.attempt_id as string);
    assert.equal(new Set(ids).size, ids.length, "each attempt once");
    assert.deepEqual(
      ids.sort(),
      nodes.flatMap((node) => Array.from({ length: 25 }, (_, i) => `${node}-${i}`)).sort(),
    );
    const summary = await getJson<MetricsSummary>(`${server.url}/summary`);
    assert.deepEqual(
      summary.nodes.map((n) => [n.node, n.images_total, n.done, n.failed, n.pending]),
      [["node-a", 10, 10, 0, 0], ["node-b", 10, 10, 0, 0]],
    );
    assert.equal(summary.progress.complete, true);
    assert.equal(summary.images.reduce((sum, i) => sum + i.attempts, 0), 50);
  } finally {
    for (const s of submitters) s.close();
    await server.stop("SIGKILL");
  }
});

Deno.test("with --state-file, a server killed and started again still has every attempt", async () => {
  const dir = await Deno.makeTempDir();
  const args = ["--state-file", `${dir}/results.ndjson`];
  try {
    const first = await startMetricsServerProcess({ args });
    // A node that finished: it delivered everything, then went away for good.
    const submitter = new MetricsSubmitter({
      endpoint: `127.0.0.1:${first.grpcPort}`,
      logger: quiet,
      batchSize: 7,
      gracefulClose: false,
    });
    for (let i = 0; i < 20; i++) submitter.submit(attempt("finished-node", i));
    const delivery = await submitter.flush(10_000);
    assert.deepEqual([delivery.delivered, delivery.undelivered], [20, 0]);
    // As a crash would: no chance to save anything at the end.
    await first.stop("SIGKILL");

    await using second = await startMetricsServerProcess({ args });
    const results = await getJson<MetricsResultJson[]>(`${second.url}/metrics`);
    assert.deepEqual(
      results.map((r) => r.attempt_id).sort(),
      Array.from({ length: 20 }, (_, i) => `finished-node-${i}`).sort(),
    );
    assert.match(
      second.stderr(),
      /restored the state file.*results=20|"results":20/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SIGTERM stops the server gracefully with status 0", async () => {
  const server = await startMetricsServerProcess();
  const status = await server.stop("SIGTERM");
  assert.equal(status.code, 0, server.stderr());
  assert.match(server.stderr(), /"msg":"shutting down"/);
});

testEachContainerd({
  name: "fetch --metrics-endpoint on two nodes reports every attempt, across a server restart",
  async fn(_t, containerd) {
    await using stack = await startStack({ containerd });
    const images = await Promise.all(
      [1, 2, 3].map((i) =>
        stack.pushImage({ repository: `metrics/app-${i}`, tag: "v1", layerBytes: 512 << 10 })
      ),
    );
    const refs = images.map((image) => image.reference(stack.proxy.host));
    const missing = `${stack.proxy.host}/metrics/does-not-exist:v1`;
    // Slow pulls, and one failed blob request, so the run lasts and has a retried attempt.
    stack.proxy.setFaults({
      bandwidthBytesPerSecond: 400 << 10,
      failFirst: { count: 1, status: 503 },
    });
    let server = await startMetricsServerProcess();
    const { grpcPort, httpPort } = server;
    try {
      const fetches = ["node-1", "node-2"].map((node) =>
        spawnProgram([
          ...jsonFetchArgs(stack.containerd.socket),
          "--node-name",
          node,
          "--metrics-endpoint",
          `127.0.0.1:${grpcPort}`,
          "--initial-pull-attempt-delay",
          "100ms",
          "--max-pull-attempt-delay",
          "500ms",
          "--overall-timeout",
          "2m",
          ...refs,
          missing,
        ])
      );
      // Restart the server once the first attempts have arrived, while pulls go on.
      assert.ok(
        await waitUntil(
          async () => (await getJson<unknown[]>(`${server.url}/metrics`)).length > 0,
          { timeoutMs: 60_000, intervalMs: 100 },
        ),
        "no attempt reached the server",
      );
      await server.stop("SIGKILL");
      await sleep(500);
      server = await startMetricsServerProcess({ grpcPort, httpPort });
      const runs = await Promise.all(fetches.map((f) => f.finished));
      for (const run of runs) {
        assert.ok(run.summary, `no summary:\n${run.stderr}`);
      }
      const results = await getJson<MetricsResultJson[]>(`${server.url}/metrics`);
      const ids = results.map((r) => r.attempt_id);
      assert.equal(new Set(ids).size, ids.length);
      for (const [index, run] of runs.entries()) {
        const node = `node-${index + 1}`;
        const mine = results.filter((r) => r.node === node);
        const attempts = run.events.filter((e) =>
          e.msg === "image pulled" || e.msg === "pull attempt failed" ||
          e.msg === "image already present"
        ).length;
        assert.equal(mine.length, attempts, `${node}: every attempt arrived with its node`);
      }
      const summary = await getJson<MetricsSummary>(`${server.url}/summary`);
      for (const [index, run] of runs.entries()) {
        const node = summary.nodes.find((n) => n.node === `node-${index + 1}`)!;
        assert.equal(node.images_total, 4);
        assert.equal(node.done, run.summary!.pulled + run.summary!.present);
        assert.equal(node.failed, run.summary!.failed);
        assert.equal(node.pending, 0);
      }
      const missingImage = summary.images.find((i) => i.image === missing)!;
      assert.deepEqual([missingImage.nodes_failed, missingImage.nodes_done], [2, 0]);
      assert.equal(summary.progress.complete, true);
    } finally {
      await server.stop("SIGKILL");
    }
  },
});

Deno.test("the HTML report renders the grid in a real headless browser", async () => {
  await ensureDebianPackages([{ name: "chromium", binary: "chromium" }]);
  await using server = await startMetricsServerProcess();
  // 60 nodes x 24 images: mostly pulled, some present, retrying, failed and pending.
  const submitter = new MetricsSubmitter({
    endpoint: `127.0.0.1:${server.grpcPort}`,
    logger: quiet,
    // A GOAWAY can abort the Deno server (denoland/deno#36788); end the connection without one.
    gracefulClose: false,
  });
  const expected = { pulled: 0, present: 0, failed: 0, retrying: 0, pending: 0 };
  for (let n = 0; n < 60; n++) {
    const node = `node-${String(n).padStart(3, "0")}`;
    for (let i = 0; i < 24; i++) {
      const image = `registry.example/team/service-${String(i).padStart(2, "0")}:v1`;
      const base = {
        startedAt: 1_700_000_000,
        image,
        node,
        imagesTotal: 24,
        sizeBytes: (i + 1) * 10_000_000,
      };
      const kind = (n * 7 + i * 3) % 29;
      if (kind === 0) {
        submitter.submit({
          ...base,
          attemptId: `${node}/${i}/1`,
          outcome: "attempt-failed",
          attempt: 1,
          durationMs: 30_000,
          error: "the attempt timed out after 30s",
        });
        submitter.submit({
          ...base,
          attemptId: `${node}/${i}/2`,
          outcome: "failed",
          attempt: 2,
          durationMs: 1_200,
          error: "registry.example/team: 403 Forbidden",
        });
        expected.failed++;
      } else if (kind === 1) {
        submitter.submit({
          ...base,
          attemptId: `${node}/${i}/1`,
          outcome: "attempt-failed",
          attempt: 1,
          durationMs: 30_000,
          error: "the attempt timed out after 30s",
        });
        expected.retrying++;
      } else if (kind === 2 || (n >= 55 && i >= 20)) {
        expected.pending++;
      } else if (kind < 6) {
        submitter.submit({
          ...base,
          attemptId: `${node}/${i}/0`,
          outcome: "present",
          attempt: 0,
          durationMs: 0,
        });
        expected.present++;
      } else {
        const slow = (n % 13 === 0 ? 8 : 1) * (1000 + ((n * 31 + i * 17) % 40) * 250);
        submitter.submit({
          ...base,
          attemptId: `${node}/${i}/1`,
          outcome: "pulled",
          attempt: 1,
          durationMs: slow,
        });
        expected.pulled++;
      }
    }
  }
  const report = await submitter.flush(15_000);
  assert.equal(report.undelivered, 0);

  const profile = await Deno.makeTempDir({ prefix: "chromium-profile-" });
  const output = new URL("./output/", import.meta.url);
  await Deno.mkdir(output, { recursive: true });
  const screenshot = new URL("report.png", output).pathname;
  const chromium = (extra: string[]) =>
    new Deno.Command("chromium", {
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        `--user-data-dir=${profile}`,
        "--window-size=1400,1000",
        "--virtual-time-budget=3000",
        ...extra,
        `${server.url}/`,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  try {
    const dom = await chromium(["--dump-dom"]);
    const html = new TextDecoder().decode(dom.stdout);
    assert.ok(dom.success, new TextDecoder().decode(dom.stderr));
    const canvas = /<canvas id="grid"([^>]*)>/.exec(html)?.[1] ?? "";
    const attribute = (name: string) =>
      Number(new RegExp(`data-${name}="(\\d+)"`).exec(canvas)?.[1]);
    assert.equal(attribute("nodes"), 60, `the grid was not drawn:\n${html.slice(0, 2000)}`);
    assert.equal(attribute("images"), 24);
    for (const [state, count] of Object.entries(expected)) {
      assert.equal(attribute(state), count, `${state} cells`);
    }
    const text = (id: string) => new RegExp(`id="${id}">([^<]*)<`).exec(html)?.[1];
    assert.equal(text("done"), String(expected.pulled + expected.present));
    assert.equal(text("failed"), String(expected.failed));
    assert.equal(text("pending"), String(expected.pending + expected.retrying));
    assert.equal(text("nodes"), "60");
    assert.match(html, /403 Forbidden/, "the errors are listed");

    const shot = await chromium([`--screenshot=${screenshot}`]);
    assert.ok(shot.success, new TextDecoder().decode(shot.stderr));
    assert.ok((await Deno.stat(screenshot)).size > 10_000, "the screenshot is not empty");
  } finally {
    await Deno.remove(profile, { recursive: true });
  }
});

/** Streams results to the server in one call and waits for its answer. */
function streamResults(port: number, results: MetricsResult[]): Promise<void> {
  // Not closed: a GOAWAY can abort the Deno server (denoland/deno#36788).
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  return new Promise<void>((resolve, reject) => {
    const call = client.makeClientStreamRequest(
      "/Metrics/Submit",
      (result: MetricsResult) =>
        MetricsService.service.Submit.requestSerialize(resultToWire(result)),
      (buffer: Buffer) => buffer,
      new grpc.Metadata(),
      {},
      (error: grpc.ServiceError | null) => error ? reject(error) : resolve(),
    );
    for (const result of results) call.write(result);
    call.end();
  });
}

Deno.test("/summary counts each node's current run, and keeps it so across a SIGKILL", async () => {
  const dir = await Deno.makeTempDir();
  const args = ["--state-file", `${dir}/results.ndjson`];
  const pulled = (node: string, image: string, extra: Partial<MetricsResult>): MetricsResult => ({
    attemptId: crypto.randomUUID(),
    startedAt: 1_780_000_000,
    image,
    node,
    outcome: "pulled",
    attempt: 1,
    durationMs: 1_000,
    imagesTotal: 2,
    ...extra,
  });
  try {
    const first = await startMetricsServerProcess({ args });
    await streamResults(first.grpcPort, [
      pulled("node-a", "app:1", { runId: "run-1" }),
      pulled("node-a", "db:1", { runId: "run-1" }),
      // The original tool's client: no run id.
      pulled("node-b", "app:1", {}),
      pulled("node-b", "db:1", {}),
    ]);
    assert.equal((await getJson<MetricsSummary>(`${first.url}/summary`)).progress.complete, true);
    // node-a runs again with a longer list; one image is through so far.
    await streamResults(first.grpcPort, [
      pulled("node-a", "app:1", { runId: "run-2", startedAt: 1_780_003_600, imagesTotal: 3 }),
    ]);
    const check = async (url: string) => {
      const summary = await getJson<MetricsSummary>(`${url}/summary?grid=1`);
      assert.equal(summary.progress.complete, false, "db:1 and cache:1 are not done in run-2");
      const a = summary.nodes.find((n) => n.node === "node-a")!;
      assert.deepEqual([a.done, a.pending, a.run_id, a.earlier_runs.runs], [1, 2, "run-2", 1]);
      assert.equal(summary.grid!.states[0], "Po", "db:1 was done in the run before");
      assert.equal(summary.results, 3, "run-1's results are counts now");
    };
    await check(first.url);
    await first.stop("SIGKILL");

    await using second = await startMetricsServerProcess({ args });
    await check(second.url);
    // A late re-send from run-1 does not count.
    await streamResults(second.grpcPort, [pulled("node-a", "db:1", { runId: "run-1" })]);
    await check(second.url);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** EKS-style node names, which share their whole right half. */
const eksName = (n: number) =>
  `ip-10-0-${Math.floor(n / 250)}-${n % 250}.eu-west-1.compute.internal`;

/** 1,000 nodes x 50 images: two nodes with failed images, two slow ones, one not finished. */
function clusterOfAThousand(): MetricsResult[] {
  const results: MetricsResult[] = [];
  for (let n = 0; n < 1_000; n++) {
    const node = eksName(n);
    const runId = `run-${n}`;
    for (let i = 0; i < 50; i++) {
      if (n === 999 && i >= 40) continue;
      const base = {
        attemptId: `${n}/${i}`,
        startedAt: 1_780_000_000,
        image: `registry.example/team/service-${String(i).padStart(2, "0")}:v1`,
        node,
        runId,
        imagesTotal: 50,
        sizeBytes: (i + 1) * 10_000_000,
        attempt: 1,
      };
      const failed = (n === 737 && i < 3) || (n === 412 && i === 7);
      const slow = n === 5 || n === 900 ? 10 : 1;
      results.push(
        failed ? { ...base, outcome: "failed", durationMs: 1_200, error: "403 Forbidden" } : {
          ...base,
          outcome: "pulled",
          durationMs: slow * (1_000 + ((n * 31 + i * 17) % 40) * 25),
        },
      );
    }
  }
  return results;
}

Deno.test("the report at 1,000 nodes x 50 images: names told apart, failed and slow nodes first", async () => {
  await ensureDebianPackages([{ name: "chromium", binary: "chromium" }]);
  await using server = await startMetricsServerProcess();
  // Four plain streams (as many nodes' submitters would): the submitter's per-batch
  // acknowledgements would make this take a minute.
  const results = clusterOfAThousand();
  await Promise.all(
    [0, 1, 2, 3].map((part) =>
      streamResults(server.grpcPort, results.filter((_, i) => i % 4 === part))
    ),
  );
  assert.equal((await getJson<MetricsSummary>(`${server.url}/summary`)).results, results.length);

  const output = new URL("./output/", import.meta.url);
  await Deno.mkdir(output, { recursive: true });
  const screenshot = new URL("report-1000-nodes.png", output).pathname;
  const profile = await Deno.makeTempDir({ prefix: "chromium-profile-" });
  const chromium = (extra: string[], query = "") =>
    new Deno.Command("chromium", {
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        `--user-data-dir=${profile}`,
        "--window-size=1400,1400",
        "--virtual-time-budget=3000",
        ...extra,
        `${server.url}/${query}`,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  try {
    const dom = await chromium(["--dump-dom"]);
    const html = new TextDecoder().decode(dom.stdout);
    assert.ok(dom.success, new TextDecoder().decode(dom.stderr));
    const canvas = /<canvas id="grid"([^>]*)>/.exec(html)?.[1] ?? "";
    assert.match(canvas, /data-nodes="1000"/, `the grid was not drawn:\n${html.slice(0, 2000)}`);
    const firstRows = /data-first-rows="([^"]*)"/.exec(canvas)![1].split(" ");
    assert.deepEqual(firstRows.slice(0, 4), [eksName(737), eksName(412), eksName(5), eksName(900)]);
    assert.match(html, /without what they all share: …\.eu-west-1\.compute\.internal/);
    const attention = [
      ...(/<table id="attention">.*?<tbody>(.*?)<\/tbody>/s.exec(html)?.[1] ?? "")
        .matchAll(/<tr><td>([^<]*)<\/td><td class="num">(\d+)<\/td>/g),
    ].map(([, node, failed]) => [node, Number(failed)]);
    assert.deepEqual(attention, [
      ["ip-10-0-2-237", 3],
      ["ip-10-0-1-162", 1],
      ["ip-10-0-0-5", 0],
      ["ip-10-0-3-150", 0],
      ["ip-10-0-3-249", 0],
    ], "failed, slow and unfinished nodes, and no other");

    const failedOnly = await chromium(["--dump-dom"], "?show=failed");
    const filtered = /<canvas id="grid"([^>]*)>/.exec(new TextDecoder().decode(failedOnly.stdout))
      ?.[1] ?? "";
    assert.match(filtered, /data-shown="2"/, "the filter shows the two failed nodes only");

    const shot = await chromium([`--screenshot=${screenshot}`]);
    assert.ok(shot.success, new TextDecoder().decode(shot.stderr));
    assert.ok((await Deno.stat(screenshot)).size > 10_000, "the screenshot is not empty");
  } finally {
    await Deno.remove(profile, { recursive: true });
  }
});
