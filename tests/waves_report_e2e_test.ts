/**
 * The report's Waves section in a real headless browser (Debian's chromium), filled from a real
 * `aggregate-metrics --waves` process that nodes asked over gRPC, with the bearer token.
 */
import assert from "node:assert/strict";
import { WavesClient } from "../lib/waves/client/waves_client.ts";
import { startMetricsServerProcess } from "../testing/metrics_server_process.ts";
import { ensureDebianPackages } from "../testing/stack/packages.ts";
import { admitRequest } from "../testing/admit_request.ts";
import { freePort } from "../testing/stack/free_port.ts";

const TOKEN = "report-token";
const never = new AbortController().signal;

Deno.test("the report shows per image who has, pulls and waits, and the bound per registry", async () => {
  await ensureDebianPackages([{ name: "chromium", binary: "chromium" }]);
  const tokenFile = await Deno.makeTempFile();
  await Deno.writeTextFile(tokenFile, TOKEN);
  // The page is read as people read it: through the loopback port (kubectl port-forward).
  const localPort = freePort();
  await using server = await startMetricsServerProcess({
    args: [
      "--waves",
      "--fanout",
      "1",
      "--token-file",
      tokenFile,
      "--local-http-port",
      `${localPort}`,
    ],
  });
  // A GOAWAY can abort the Deno server (denoland/deno#36788): end the connection without one.
  using client = new WavesClient({
    endpoint: `127.0.0.1:${server.grpcPort}`,
    token: TOKEN,
    gracefulClose: false,
  });
  const app = "registry.example/team/app:v1";
  const db = "registry.example/team/db:v1";
  await client.admit(admitRequest("node-1", { want: [app] }), never);
  await client.admit(admitRequest("node-1", { pulled: [app] }), never);
  for (const node of ["node-2", "node-3", "node-4"]) {
    await client.admit(admitRequest(node, { want: [app, db] }), never);
  }
  await client.admit(
    admitRequest("node-2", { failed: [{ image: db, rate_limited: true }] }),
    never,
  );

  const profile = await Deno.makeTempDir({ prefix: "chromium-profile-" });
  try {
    const dom = await new Deno.Command("chromium", {
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        `--user-data-dir=${profile}`,
        "--virtual-time-budget=3000",
        "--dump-dom",
        `http://127.0.0.1:${localPort}/`,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const html = new TextDecoder().decode(dom.stdout);
    assert.ok(dom.success, new TextDecoder().decode(dom.stderr));
    assert.match(html, /<section id="waves">/, "the section is shown");
    const rows = (table: string) =>
      [...(new RegExp(`<table id="${table}">.*?<tbody>(.*?)</tbody>`, "s").exec(html)?.[1] ?? "")
        .matchAll(/<tr>(.*?)<\/tr>/gs)]
        .map(([, row]) => [...row.matchAll(/<td[^>]*>(.*?)<\/td>/g)].map(([, cell]) => cell));
    // app: node-1 has it, fanout 1 lets node-2 pull it, nodes 3 and 4 wait. db: node-2 seeded it
    // and failed with a 429, nodes 3 and 4 wait. The 429 cut the registry's bound to 1 node.
    assert.deepEqual(rows("waves-images"), [
      [app, "1", "1", "2"],
      [db, "0", "0", "2"],
    ]);
    assert.deepEqual(rows("waves-registries"), [["registry.example", "1", "1", "1"]]);
    assert.match(html, /first wave 1, fanout 1/);
  } finally {
    await Deno.remove(profile, { recursive: true });
    await Deno.remove(tokenFile);
  }
});
