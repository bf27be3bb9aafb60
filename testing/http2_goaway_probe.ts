/**
 * A probe of denoland/deno#36788, run as a subprocess by `lib/core/http2_goaway_mitigation_test.ts`:
 * a `node:http2` server and client in this process exchange one request, then one side closes
 * gracefully, so the other *receives* a GOAWAY. Prints `survived` and exits 0 when this process
 * lives through it; Deno 2.9.4–2.9.6 abort instead (exit 134 or 139), reliably so when glibc's
 * `MALLOC_PERTURB_` is set.
 *
 * Usage: `deno run --allow-net testing/http2_goaway_probe.ts <mitigated|unmitigated> <receiver>`,
 * where `<receiver>` is `server` (the client closes) or `client` (the server closes).
 *
 * @module
 */
import http2 from "node:http2";
import { installHttp2GoawayMitigation } from "../lib/core/http2_goaway_mitigation.ts";

if (import.meta.main) {
  const [mode, receiver] = Deno.args;
  if (!["mitigated", "unmitigated"].includes(mode) || !["server", "client"].includes(receiver)) {
    console.error("usage: http2_goaway_probe.ts <mitigated|unmitigated> <server|client>");
    Deno.exit(2);
  }
  if (mode === "mitigated") installHttp2GoawayMitigation();
  await probe(receiver as "server" | "client");
  console.log("survived");
}

/** One request on one connection, then the side that is not `receiver` closes gracefully. */
async function probe(receiver: "server" | "client"): Promise<void> {
  const server = http2.createServer();
  let serverSession: http2.ServerHttp2Session | undefined;
  server.on("session", (session) => serverSession = session);
  server.on("stream", (stream: http2.ServerHttp2Stream) => {
    stream.respond({ ":status": 200 });
    stream.end("ok");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  const client = http2.connect(`http://127.0.0.1:${port}`);
  client.on("error", () => {});
  const received = new Promise<void>((resolve) => client.once("goaway", () => resolve()));
  const served = new Promise<void>((resolve) => {
    const request = client.request({ ":path": "/" });
    request.on("data", () => {});
    request.on("end", resolve);
  });
  await served;
  if (receiver === "server") client.close();
  else serverSession!.close();
  if (receiver === "client") await received;
  // Long enough for the receiving side to process the frame and tear its session down.
  await new Promise((resolve) => setTimeout(resolve, 300));
  client.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}
