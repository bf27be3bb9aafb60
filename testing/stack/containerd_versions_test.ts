import assert from "node:assert/strict";
import { CriClient } from "../../lib/runtime/cri_client.ts";
import { CONTAINERD_VERSIONS, startStack } from "./stack.ts";
import { DebianDownloadError, downloadDebianPackage } from "./debian_download.ts";

/**
 * What CRI's `Version` says each runtime is: Debian's 1.x builds give their Debian upstream
 * version, forky's 2.1.9 build its Go module version with no build information.
 */
const RUNTIME_VERSION: Record<string, string> = {
  "1.6.20": "1.6.20~ds1",
  "1.7.24": "1.7.24~ds1",
  "2.1.9": "2.1.9+unknown",
};

for (const containerd of CONTAINERD_VERSIONS) {
  Deno.test(`the stack runs the version asked for and CRI says so (containerd ${containerd.version})`, async () => {
    await using stack = await startStack({ containerd });
    assert.equal(stack.containerdVersion, containerd);
    using cri = new CriClient(stack.containerd.socket);
    const version = await cri.version();
    assert.equal(version.runtimeName, "containerd");
    assert.equal(version.runtimeVersion, RUNTIME_VERSION[containerd.version]);
    assert.equal(version.runtimeApiVersion, "v1");
  });
}

Deno.test("a suite that does not offer the version asked for is a clear error", async () => {
  const cacheDir = await Deno.makeTempDir({ prefix: "ipf-deb-" });
  try {
    await assert.rejects(
      downloadDebianPackage({ name: "containerd", suite: "trixie", versionPrefix: "0.0.1~" }, {
        cacheDir,
      }),
      (error: unknown) => {
        assert.ok(error instanceof DebianDownloadError);
        assert.match(error.message, /containerd 0\.0\.1~\* from Debian trixie/);
        assert.match(error.message, /the trixie suite offers version 1\.7\./);
        assert.match(error.message, /containerd_versions\.ts/);
        return true;
      },
    );
  } finally {
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("an unreachable mirror is a clear error naming it", async () => {
  const cacheDir = await Deno.makeTempDir({ prefix: "ipf-deb-" });
  try {
    await assert.rejects(
      downloadDebianPackage(
        { name: "containerd", suite: "trixie", versionPrefix: "1.7.24~" },
        { cacheDir, mirror: "http://127.0.0.1:1/debian" },
      ),
      (error: unknown) => {
        assert.ok(error instanceof DebianDownloadError);
        assert.match(error.message, /http:\/\/127\.0\.0\.1:1\/debian/);
        assert.match(error.message, /reachable/);
        return true;
      },
    );
  } finally {
    await Deno.remove(cacheDir, { recursive: true });
  }
});
