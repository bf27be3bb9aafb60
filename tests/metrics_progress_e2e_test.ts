/**
 * Live progress end to end: a real `fetch --metrics-endpoint` pulling a bandwidth-capped image
 * through the real stack, and a real `aggregate-metrics` process whose `/summary`, report page
 * and Prometheus exposition show the image downloading while it does, then done, with only the
 * finished attempt in `/metrics`.
 */
import assert from "node:assert/strict";
import type { MetricsResultJson } from "../lib/metrics/protocol.ts";
import type { MetricsSummary, NodeDownload } from "../lib/metrics/server/summary.ts";
import { startMetricsServerProcess } from "../testing/metrics_server_process.ts";
import { jsonFetchArgs, spawnProgram } from "../testing/prefetcher_process.ts";
import { startStack, testEachContainerd } from "../testing/stack/stack.ts";

const MiB = 1 << 20;
const NODE = "node-live";

async function get(url: string, accept?: string): Promise<string> {
  const response = await fetch(url, { headers: accept ? { accept } : {} });
  assert.equal(response.status, 200, `${url} answered ${response.status}`);
  return await response.text();
}

testEachContainerd(
  "a pull in progress shows in /summary, the report and Prometheus, then gives way to its result",
  async (_t, containerd) => {
    await using stack = await startStack({ containerd });
    const image = await stack.pushImage({
      repository: "live/progress",
      tag: "v1",
      layers: 2,
      layerBytes: 3 * MiB,
    });
    const reference = image.reference(stack.proxy.host);
    stack.proxy.setFaults({ bandwidthBytesPerSecond: MiB });
    await using server = await startMetricsServerProcess();
    const run = spawnProgram([
      ...jsonFetchArgs(stack.containerd.socket),
      "--node-name",
      NODE,
      "--metrics-endpoint",
      `127.0.0.1:${server.grpcPort}`,
      "--progress-interval",
      "1s",
      reference,
    ]);
    let exited = false;
    const finished = run.finished.finally(() => exited = true);

    const seen: NodeDownload[] = [];
    let page = "", prometheus = "", metricsWhileDownloading: MetricsResultJson[] | undefined;
    while (!exited) {
      const summary = JSON.parse(await get(`${server.url}/summary`)) as MetricsSummary;
      const download = summary.nodes.find((n) => n.node === NODE)?.downloading
        .find((d) => d.image === reference);
      if (download) {
        if (seen.at(-1)?.received_bytes !== download.received_bytes) seen.push(download);
        assert.equal(summary.progress.downloading, 1);
        assert.equal(summary.progress.bytes_in_flight, download.received_bytes);
        assert.deepEqual(summary.downloading.map((d) => [d.node, d.image]), [[NODE, reference]]);
        if (!page) {
          page = await get(`${server.url}/`);
          prometheus = await get(`${server.url}/metrics`, "text/plain;version=0.0.4");
          metricsWhileDownloading = JSON.parse(await get(`${server.url}/metrics`));
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    stack.proxy.setFaults({});
    const result = await finished;
    const logs = `exit ${result.code}\nstderr:\n${result.stderr}`;
    assert.equal(result.code, 0, logs);
    assert.equal(result.summary?.pulled, 1, logs);
    assert.equal(result.summary?.metrics?.undelivered, 0, logs);
    assert.equal(result.summary?.metrics?.delivered, 1, "snapshots are not counted as attempts");

    // While it downloaded: growing bytes, a known total, a rate, a percent and a time left.
    assert.ok(seen.length >= 2, `too few snapshots seen: ${JSON.stringify(seen)}\n${logs}`);
    for (let i = 1; i < seen.length; i++) {
      assert.ok(seen[i].received_bytes > seen[i - 1].received_bytes, JSON.stringify(seen));
      assert.ok(seen[i].elapsed_ms > seen[i - 1].elapsed_ms, JSON.stringify(seen));
    }
    const last = seen.at(-1)!;
    assert.equal(new Set(seen.map((d) => d.attempt_id)).size, 1, "one attempt");
    assert.equal(last.attempt, 1);
    assert.ok(
      last.total_bytes! >= 6 * MiB && last.total_bytes! <= image.sizeBytes + 64 * 1024,
      `total ${last.total_bytes} for a ${image.sizeBytes}-byte image`,
    );
    assert.ok(
      last.bytes_per_second > 0.3 * MiB && last.bytes_per_second < 3 * MiB,
      `rate ${last.bytes_per_second}`,
    );
    assert.ok(last.percent! > 0 && last.percent! < 100);
    assert.ok(last.eta_seconds! > 0);
    // The other views while it downloaded: a cell of its own colour, a gauge, no attempt yet.
    assert.match(page, /"states":\["d"\]/);
    assert.match(page, /id="downloads"/);
    assert.match(prometheus, /image_prefetcher_downloading_pulls\{image="[^"]+"\} 1/);
    assert.match(prometheus, /image_prefetcher_downloading_received_bytes\{image="[^"]+"\} [1-9]/);
    assert.doesNotMatch(prometheus, /outcome="in-progress"/);
    assert.deepEqual(metricsWhileDownloading, [], "a download in flight is not an attempt");

    // Then done: the finished attempt, under the same id, is all there is.
    const metrics = JSON.parse(await get(`${server.url}/metrics`)) as MetricsResultJson[];
    assert.deepEqual(metrics.map((r) => [r.attempt_id, r.node, r.image, r.outcome]), [
      [last.attempt_id, NODE, reference, "pulled"],
    ]);
    assert.ok(Number(metrics[0].bytes_received) >= last.received_bytes, JSON.stringify(metrics[0]));
    const summary = JSON.parse(await get(`${server.url}/summary?grid=1`)) as MetricsSummary;
    const node = summary.nodes.find((n) => n.node === NODE)!;
    assert.deepEqual([node.done, node.pending, node.downloading, node.bytes_in_flight], [
      1,
      0,
      [],
      0,
    ]);
    assert.deepEqual([summary.progress.downloading, summary.downloading], [0, []]);
    assert.deepEqual(summary.grid?.states, ["P"]);
    assert.equal(summary.results, 1);
    assert.equal(summary.progress.complete, true);
  },
);
