import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  ensureDebianPackages,
  OCI_MANIFEST_MEDIA_TYPE,
  pushImage,
  STACK_PACKAGES,
  startContainerd,
  startFaultProxy,
  startRegistry,
  startStack,
} from "./stack.ts";

const credentials = { username: "tester", password: "s3cret pass" };

Deno.test("registry with auth answers 401 without credentials and 200 with them", async () => {
  await ensureDebianPackages([...STACK_PACKAGES]);
  await using registry = await startRegistry({ auth: credentials });
  assert.match(registry.host, /^127\.0\.0\.1:\d+$/);

  const anonymous = await fetch(`${registry.url}/v2/`);
  await anonymous.body?.cancel();
  assert.equal(anonymous.status, 401);
  const authorized = await fetch(`${registry.url}/v2/`, {
    headers: { authorization: `Basic ${btoa(`${credentials.username}:${credentials.password}`)}` },
  });
  await authorized.body?.cancel();
  assert.equal(authorized.status, 200);

  await registry.stop();
  await assert.rejects(Deno.stat(registry.dir), Deno.errors.NotFound);
});

Deno.test("pushed image is served through the proxy, which counts the bytes", async () => {
  await using registry = await startRegistry();
  await using proxy = await startFaultProxy(registry.url);
  const image = await pushImage(registry, { repository: "stack/app", tag: "v1", layers: 2 });
  assert.equal(image.reference(proxy.host), `${proxy.host}/stack/app:v1`);
  const again = await pushImage(registry, { repository: "stack/other", layers: 2 });
  assert.notDeepEqual(again.layers, image.layers, "no seed: unique layers");

  const response = await fetch(`${proxy.url}/v2/stack/app/manifests/v1`, {
    headers: { accept: OCI_MANIFEST_MEDIA_TYPE },
  });
  const body = new Uint8Array(await response.arrayBuffer());
  assert.equal(response.status, 200);
  assert.equal(`sha256:${createHash("sha256").update(body).digest("hex")}`, image.digest);
  assert.equal(proxy.bytesServed, body.byteLength);
  assert.deepEqual(
    proxy.requests.map(({ method, path, status, bytes }) => ({ method, path, status, bytes })),
    [{ method: "GET", path: "/v2/stack/app/manifests/v1", status: 200, bytes: body.byteLength }],
  );

  const layer = await fetch(`${proxy.url}/v2/stack/app/blobs/${image.layers[0].digest}`);
  const layerBytes = (await layer.arrayBuffer()).byteLength;
  assert.equal(layerBytes, image.layers[0].size);
  assert.ok(layerBytes > 64 * 1024, "a 64 KiB random file does not compress");
  assert.equal(proxy.bytesServed, body.byteLength + layerBytes);

  proxy.resetCounters();
  assert.equal(proxy.bytesServed, 0);
  assert.equal(proxy.requests.length, 0);
});

Deno.test("stall holds a blob GET on a kept-alive connection while later requests work", async () => {
  await using registry = await startRegistry();
  await using proxy = await startFaultProxy(registry.url);
  const image = await pushImage(registry, { repository: "stack/stall" });
  const blobPath = `/v2/stack/stall/blobs/${image.layers[0].digest}`;

  // A raw connection, so we know the stalled GET is the second request on a kept-alive socket
  // (HTTP clients may silently retry on a fresh connection).
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(proxy.url.split(":")[2]) });
  try {
    const first = await rawRequest(conn, proxy.host, "/v2/", 5000);
    assert.match(first, /^HTTP\/1\.1 200 /);
    proxy.setFaults({ stall: { count: 1 } });
    assert.equal(
      await rawRequest(conn, proxy.host, blobPath, 500),
      "",
      "stalled: not even headers",
    );
  } finally {
    try {
      conn.close();
    } catch {
      // rawRequest already closed it on timeout
    }
  }
  const [ping, stalled] = proxy.requests;
  assert.equal(stalled.stalled, true);
  assert.equal(stalled.status, 0);
  assert.equal(stalled.connection, ping.connection, "same kept-alive connection");

  const after = await fetch(`${proxy.url}${blobPath}`);
  assert.equal(after.status, 200);
  assert.equal((await after.arrayBuffer()).byteLength, image.layers[0].size);

  proxy.setFaults({ stall: { afterBytes: 1000 } });
  const partial = await fetch(`${proxy.url}${blobPath}`, { signal: AbortSignal.timeout(500) });
  assert.equal(partial.status, 200, "headers are sent before the stall");
  await assert.rejects(partial.arrayBuffer(), (e: Error) => e.name === "TimeoutError");
  assert.equal(proxy.requests.at(-1)?.bytes, 1000);
});

Deno.test("failFirst answers an error status and resetAfterBytes cuts the body", async () => {
  await using registry = await startRegistry();
  await using proxy = await startFaultProxy(registry.url);
  const image = await pushImage(registry, { repository: "stack/faults" });
  const blobUrl = `${proxy.url}/v2/stack/faults/blobs/${image.layers[0].digest}`;

  proxy.setFaults({ failFirst: { count: 1, status: 503 } });
  const failed = await fetch(blobUrl);
  await failed.body?.cancel();
  assert.equal(failed.status, 503);
  const ok = await fetch(blobUrl);
  await ok.body?.cancel();
  assert.equal(ok.status, 200);

  proxy.setFaults({ resetAfterBytes: { count: 1, afterBytes: 4096 } });
  const cut = await fetch(blobUrl);
  await assert.rejects(cut.arrayBuffer());
  assert.equal(proxy.requests.at(-1)?.bytes, 4096);
  assert.equal(proxy.requests.at(-1)?.fault, "reset");
});

Deno.test("containerd starts, stops, restarts with the same socket and cleans up", async () => {
  await ensureDebianPackages([...STACK_PACKAGES]);
  const containerd = await startContainerd({ registryHosts: ["127.0.0.1:1"] });
  try {
    assert.ok(containerd.running);
    assert.ok(containerd.socket.length < 100);
    assert.deepEqual(await containerd.listImages(), []);
    await containerd.stop();
    assert.equal(containerd.running, false);
    await containerd.restart();
    assert.ok(containerd.running);
    assert.deepEqual(await containerd.listImages(), []);
  } finally {
    await containerd[Symbol.asyncDispose]();
  }
  await assert.rejects(Deno.stat(containerd.dir), Deno.errors.NotFound);
});

Deno.test("startStack: containerd pulls a pushed image through the proxy", async () => {
  await using stack = await startStack({ registryAuth: credentials });
  const image = await stack.pushImage({ repository: "stack/pull", layers: 2, layerBytes: 1 << 20 });
  const reference = image.reference(stack.proxy.host);

  const pull = await new Deno.Command("ctr", {
    args: [
      "--address",
      stack.containerd.socket,
      "-n",
      "k8s.io",
      "images",
      "pull",
      "--plain-http",
      "--user",
      `${credentials.username}:${credentials.password}`,
      reference,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(pull.success, new TextDecoder().decode(pull.stderr));
  assert.ok((await stack.containerd.listImages()).includes(reference));
  assert.ok(
    stack.proxy.bytesServed >= image.sizeBytes,
    `served ${stack.proxy.bytesServed} < image ${image.sizeBytes}`,
  );
  assert.ok(stack.proxy.requests.some((r) => r.path.endsWith(image.layers[1].digest)));
});

/**
 * Sends `GET path` on `conn` and returns what arrives until the response looks complete
 * (headers plus `content-length` bytes) or `timeoutMs` passes; "" if nothing arrived.
 */
async function rawRequest(
  conn: Deno.Conn,
  host: string,
  path: string,
  timeoutMs: number,
): Promise<string> {
  await conn.write(new TextEncoder().encode(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`));
  const decoder = new TextDecoder();
  const buffer = new Uint8Array(64 * 1024);
  const deadline = Date.now() + timeoutMs;
  let text = "";
  while (!isComplete(text)) {
    const pending = conn.read(buffer);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), Math.max(0, deadline - Date.now()));
    });
    const n = await Promise.race([pending, timeout]);
    clearTimeout(timer);
    if (n === "timeout") {
      // Close so the pending read ends instead of leaking an op.
      conn.close();
      await pending.catch(() => null);
      break;
    }
    if (n === null) break;
    text += decoder.decode(buffer.subarray(0, n));
  }
  return text;
}

function isComplete(response: string): boolean {
  const end = response.indexOf("\r\n\r\n");
  if (end < 0) return false;
  const length = Number(/content-length: *(\d+)/i.exec(response.slice(0, end))?.[1] ?? 0);
  return response.length - end - 4 >= length;
}
