import assert from "node:assert/strict";
import { CriClient, CriError } from "./cri_client.ts";

/** A UNIX socket that accepts connections and never answers: a runtime that hangs. */
async function hangingRuntime(): Promise<{ path: string } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "ipf-hanging-runtime-" });
  const path = `${dir}/cri.sock`;
  const listener = Deno.listen({ transport: "unix", path });
  const held: Deno.Conn[] = [];
  (async () => {
    for await (const conn of listener) held.push(conn);
  })().catch(() => {});
  return {
    path,
    [Symbol.asyncDispose]: async () => {
      listener.close();
      for (const conn of held) conn.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

const DEADLINE_EXCEEDED = 4;

Deno.test("CriClient gives a call up at its deadline when the runtime never answers", async () => {
  await using runtime = await hangingRuntime();
  using cri = new CriClient(runtime.path, { callTimeoutMs: 300 });
  for (const call of [() => cri.version(), () => cri.imageStatus("a:1")]) {
    await assert.rejects(call(), (error: unknown) => {
      assert.ok(error instanceof CriError);
      assert.equal(error.code, DEADLINE_EXCEEDED);
      return true;
    });
  }
});

Deno.test("CriClient: a call's own timeout wins over the client's", async () => {
  await using runtime = await hangingRuntime();
  using cri = new CriClient(runtime.path, { callTimeoutMs: 3_600_000 });
  // Were `timeoutMs` ignored, the signal would end the call first, with another error.
  const call = cri.removeImage("a:1", { timeoutMs: 100, signal: AbortSignal.timeout(10_000) });
  await assert.rejects(call, (error: unknown) => {
    assert.ok(error instanceof CriError);
    assert.equal(error.code, DEADLINE_EXCEEDED);
    return true;
  });
});

Deno.test("CriClient cancels a call when its signal aborts", async () => {
  await using runtime = await hangingRuntime();
  using cri = new CriClient(runtime.path);
  const stop = new AbortController();
  const pull = cri.pullImage("a:1", { signal: stop.signal });
  stop.abort(new Error("SIGTERM"));
  await assert.rejects(pull, /SIGTERM/);
});
