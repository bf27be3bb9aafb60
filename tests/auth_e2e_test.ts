/**
 * Nodes and readers authenticate through the Kubernetes API, end to end: a real `aggregate-metrics`
 * (`--node-service-account`) checks every caller with the contract API server of `testing/kube/`
 * (TokenReview, SubjectAccessReview, pods), and a real `fetch` against a real containerd and
 * registry sends a projected token from a file, as a kubelet would mount it.
 */
import assert from "node:assert/strict";
import { WavesClient, WavesRefusedError } from "../lib/waves/client/waves_client.ts";
import { admitRequest } from "../testing/admit_request.ts";
import { type ApiFixture, startApiFixture } from "../testing/kube/api_fixture.ts";
import { startMetricsServerProcess } from "../testing/metrics_server_process.ts";
import { jsonFetchArgs, runProgram } from "../testing/prefetcher_process.ts";
import { freePort } from "../testing/stack/free_port.ts";
import { startStack } from "../testing/stack/stack.ts";

const ACCOUNT = "prefetch/my-images";
const AUDIENCE = "image-prefetcher:prefetch:my-images";
const never = new AbortController().signal;

/** The projected token of the pod of the instance on `node`. */
function nodeToken(
  api: ApiFixture,
  node: string,
  options: { audience?: string; expiresInSeconds?: number; account?: string } = {},
) {
  return api.server.tokens.issue({
    serviceAccount: options.account ?? ACCOUNT,
    audiences: [options.audience ?? AUDIENCE],
    expiresInSeconds: options.expiresInSeconds ?? 600,
    pod: { name: `my-images-${node}`, uid: `pod-uid-${node}` },
    node,
  });
}

async function startServer(api: ApiFixture) {
  const localPort = freePort();
  const server = await startMetricsServerProcess({
    args: [
      "--waves",
      "--node-service-account",
      ACCOUNT,
      "--token-audience",
      AUDIENCE,
      "--service-account-dir",
      api.serviceAccountDir,
      "--local-http-port",
      String(localPort),
    ],
    env: api.env,
  });
  return { server, local: `http://127.0.0.1:${localPort}` };
}

async function admit(endpoint: string, token: string, node: string) {
  using client = new WavesClient({ endpoint, token, gracefulClose: false });
  try {
    const answer = await client.admit(admitRequest(node, { want: ["r.example/app:v1"] }), never);
    return { ok: true, decisions: answer.decisions.length } as const;
  } catch (error) {
    assert.ok(error instanceof WavesRefusedError, String(error));
    return { ok: false, code: error.code, message: error.message } as const;
  }
}

async function status(url: string, headers: Record<string, string> = {}) {
  const response = await fetch(url, { headers });
  await response.body?.cancel();
  return response.status;
}

Deno.test("each node speaks for itself, with the token the Kubernetes API says is its own", async (t) => {
  await using stack = await startStack();
  const image = await stack.pushImage({ repository: "auth/app", tag: "v1" });
  await using api = await startApiFixture();
  const { server, local } = await startServer(api);
  await using _server = server;
  const endpoint = `127.0.0.1:${server.grpcPort}`;
  const tokenDir = await Deno.makeTempDir({ prefix: "ipf-projected-" });
  const tokenFile = `${tokenDir}/token`;

  async function fetchAs(node: string) {
    return await runProgram(jsonFetchArgs(
      stack.containerd.socket,
      "--node-name",
      node,
      "--metrics-endpoint",
      endpoint,
      "--metrics-token-file",
      tokenFile,
      "--waves",
      "--overall-timeout",
      "1m",
      image.reference(stack.registry.host),
    ));
  }
  async function nodesOfResults(): Promise<string[]> {
    const results = await (await fetch(`${local}/metrics`)).json() as { node: string }[];
    return [...new Set(results.map((r) => r.node))].sort();
  }

  await t.step("a node's submits and admissions land under its own name", async () => {
    await Deno.writeTextFile(tokenFile, nodeToken(api, "node-a"));
    const run = await fetchAs("node-a");
    assert.equal(run.code, 0, run.stderr);
    assert.ok(
      !run.events.some((e) => e.level === "warn" && /refus/.test(String(e.msg))),
      run.stderr,
    );
    assert.deepEqual(await nodesOfResults(), ["node-a"]);
    const summary = await (await fetch(`${local}/summary`)).json();
    assert.equal(summary.waves.nodes, 1);
    assert.deepEqual(await admit(endpoint, nodeToken(api, "node-a"), "node-a"), {
      ok: true,
      decisions: 1,
    });
    // The message may leave its node out: the token says it.
    assert.deepEqual(await admit(endpoint, nodeToken(api, "node-a"), ""), {
      ok: true,
      decisions: 1,
    });
  });

  await t.step("a token of node A claiming node B is refused, and logged once", async () => {
    await Deno.writeTextFile(tokenFile, nodeToken(api, "node-a"));
    const run = await fetchAs("node-b");
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(await nodesOfResults(), ["node-a"], "nothing recorded for node-b");
    // fetch says why, in the server's words.
    assert.ok(
      run.events.some((e) => /speaks for node "node-a", not "node-b"/.test(String(e.error))),
      run.stderr,
    );
    // Metrics are not retried against a refusal that no retry changes: one error, no outage.
    const delivery = run.events.filter((e) => /metrics/.test(String(e.msg)));
    assert.equal(
      delivery.filter((e) =>
        e.msg === "the metrics server does not let this node report; " +
            "sending it nothing more this run"
      ).length,
      1,
      run.stderr,
    );
    assert.ok(!delivery.some((e) => /buffering and retrying/.test(String(e.msg))), run.stderr);
    const refused = await admit(endpoint, nodeToken(api, "node-a"), "node-b");
    assert.equal(refused.ok, false);
    assert.equal(refused.code, 7 /* PERMISSION_DENIED */);
    assert.match(refused.message, /speaks for node "node-a", not "node-b"/);
    const lines = server.stderr().split("\n").filter((l) =>
      l.includes("speaking for another node")
    );
    assert.equal(lines.filter((l) => l.includes('"level":"warn"')).length, 1, server.stderr());
    const warnings = server.stderr().split("\n").filter((l) => l.includes('"level":"warn"'));
    assert.equal(warnings.length, 1, `the mismatch is the one warning: ${warnings.join("\n")}`);
  });

  await t.step("an expired, wrong-audience or other account's token is refused", async () => {
    const expired = await admit(
      endpoint,
      nodeToken(api, "node-a", { expiresInSeconds: -1 }),
      "node-a",
    );
    assert.deepEqual([expired.ok, expired.ok || expired.code], [false, 16]);
    assert.match(expired.ok ? "" : expired.message, /expired/);
    const audience = await admit(
      endpoint,
      nodeToken(api, "node-a", { audience: "vault" }),
      "node-a",
    );
    assert.deepEqual([audience.ok, audience.ok || audience.code], [false, 16]);
    const other = await admit(
      endpoint,
      nodeToken(api, "node-a", { account: "prefetch/other" }),
      "node-a",
    );
    assert.deepEqual([other.ok, other.ok || other.code], [false, 7]);
    assert.match(other.ok ? "" : other.message, /does not speak for nodes/);
    const forged = await admit(endpoint, "header.payload.signature", "node-a");
    assert.deepEqual([forged.ok, forged.ok || forged.code], [false, 16]);
  });

  await t.step("reads need a token RBAC lets get the path, never one in the address", async () => {
    const prometheus = api.server.tokens.issue({ serviceAccount: "monitoring/prometheus" });
    const stranger = api.server.tokens.issue({ serviceAccount: "default/default" });
    api.server.tokens.allowRead("system:serviceaccount:monitoring:prometheus", "/metrics");
    const public_ = server.url;
    assert.equal(await status(`${public_}/metrics`), 401);
    assert.equal(await status(`${public_}/metrics?token=${prometheus}`), 401);
    assert.equal(await status(`${public_}/metrics`, { authorization: `Bearer ${stranger}` }), 403);
    assert.equal(
      await status(`${public_}/metrics`, { authorization: `Bearer ${prometheus}` }),
      200,
    );
    assert.equal(
      await status(`${public_}/summary`, { authorization: `Bearer ${prometheus}` }),
      403,
    );
    // A node's projected token is for the server, not the API: it reads nothing.
    assert.equal(
      await status(`${public_}/metrics`, { authorization: `Bearer ${nodeToken(api, "node-a")}` }),
      401,
    );
    assert.equal(await status(`${public_}/healthz`), 200);
    // The loopback port (kubectl port-forward) serves the views without a credential.
    assert.equal(await status(`${local}/`), 200);
  });

  await t.step("many calls with one token cost one TokenReview", async () => {
    const token = nodeToken(api, "node-c");
    const before = api.server.tokens.tokenReviews.length;
    for (let i = 0; i < 5; i++) assert.ok((await admit(endpoint, token, "node-c")).ok);
    assert.equal(api.server.tokens.tokenReviews.length - before, 1);
  });

  await t.step(
    "without node names in tokens (before 1.30), the pod's node is looked up",
    async () => {
      api.server.tokens.nodeNameExtra = false;
      api.server.pods.set("prefetch/my-images-node-d", {
        metadata: { name: "my-images-node-d", namespace: "prefetch", uid: "pod-uid-node-d" },
        spec: { nodeName: "node-d" },
      });
      const token = nodeToken(api, "node-d");
      assert.ok((await admit(endpoint, token, "node-d")).ok);
      const refused = await admit(endpoint, token, "node-a");
      assert.equal(refused.ok || refused.code, 7);
      // A token of a pod that is gone (its name now another pod's) speaks for no node.
      api.server.pods.set("prefetch/my-images-node-e", {
        metadata: { name: "my-images-node-e", namespace: "prefetch", uid: "a-new-pod" },
        spec: { nodeName: "node-e" },
      });
      const stale = await admit(endpoint, nodeToken(api, "node-e"), "node-e");
      assert.equal(stale.ok || stale.code, 16);
    },
  );
  await Deno.remove(tokenDir, { recursive: true });
});
