import assert from "node:assert/strict";
import { fileURLToPath as fromFileUrl } from "node:url";
import { isHttp2GoawayMitigationInstalled } from "./http2_goaway_mitigation.ts";
import "./proto.ts";

const ROOT = new URL("../../", import.meta.url);
const PROBE = new URL("testing/http2_goaway_probe.ts", ROOT);

/** Runs the probe with glibc's allocator perturbed, which makes the abort certain. */
async function probe(mode: "mitigated" | "unmitigated", receiver: "server" | "client") {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--allow-net", "--allow-read", fromFileUrl(PROBE), mode, receiver],
    env: { MALLOC_PERTURB_: "165" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  return { code: output.code, survived: output.success && text.includes("survived"), text };
}

for (const receiver of ["server", "client"] as const) {
  Deno.test(`denoland/deno#36788 still aborts a ${receiver} session receiving a GOAWAY`, async () => {
    const run = await probe("unmitigated", receiver);
    assert.ok(
      !run.survived,
      `upstream fixed: remove the mitigation. Deno ${Deno.version.deno} no longer aborts when a ` +
        `node:http2 ${receiver} session receives a GOAWAY (denoland/deno#36788); delete ` +
        "lib/core/http2_goaway_mitigation.ts as its module comment says.",
    );
    assert.ok([134, 139].includes(run.code), `an abort other than the known one:\n${run.text}`);
  });

  Deno.test(`with the mitigation, a ${receiver} session survives a GOAWAY`, async () => {
    const run = await probe("mitigated", receiver);
    assert.ok(run.survived, `exit ${run.code}:\n${run.text}`);
  });
}

Deno.test("importing lib/core/proto.ts installs the mitigation", () => {
  assert.ok(isHttp2GoawayMitigationInstalled());
});

/** Every `.ts` file of the project that imports grpc-js itself. */
async function grpcImporters(): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: URL) => {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.name.startsWith(".") || entry.name === "node_modules") continue;
      const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
      if (entry.isDirectory) await walk(url);
      else if (entry.name.endsWith(".ts")) {
        const text = await Deno.readTextFile(url);
        if (/from "@grpc\/grpc-js"/.test(text)) found.push(fromFileUrl(url));
      }
    }
  };
  await walk(ROOT);
  return found.sort();
}

/** The modules `deno info` finds in the static graph of `file`. */
async function moduleGraph(file: string): Promise<string[]> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", file],
    cwd: fromFileUrl(ROOT),
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(output.success, new TextDecoder().decode(output.stderr));
  const info = JSON.parse(new TextDecoder().decode(output.stdout));
  return info.modules.map((m: { specifier: string }) => m.specifier);
}

Deno.test("every module that speaks gRPC loads the mitigation before it runs", async () => {
  const files = await grpcImporters();
  assert.ok(files.length >= 5, `found only ${files.join(", ")}`);
  const missing: string[] = [];
  for (let i = 0; i < files.length; i += 4) {
    await Promise.all(
      files.slice(i, i + 4).map(async (file) => {
        const graph = await moduleGraph(file);
        if (!graph.some((m) => m.endsWith("/lib/core/http2_goaway_mitigation.ts"))) {
          missing.push(file);
        }
      }),
    );
  }
  assert.deepEqual(
    missing,
    [],
    "these import @grpc/grpc-js without lib/core/proto.ts (which installs the HTTP/2 GOAWAY " +
      "mitigation); import it, or call installHttp2GoawayMitigation() first",
  );
});
