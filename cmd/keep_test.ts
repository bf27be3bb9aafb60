import assert from "node:assert/strict";
import { scanKeepArgs } from "./keep.ts";

Deno.test("keep's idle process reads its few flags as the parser does, later ones winning", () => {
  assert.deepEqual(
    scanKeepArgs([
      "--cri-socket",
      "/run/c.sock",
      "--image-list-file",
      "/a",
      "--pin",
      "--refresh-interval=15m",
      "--image-list-file=/etc/images/images",
      "--log-format",
      "json",
      "--debug",
      "--",
      "--refresh-interval",
      "1s",
    ]), // deno-fmt-ignore
    {
      imageListFile: "/etc/images/images",
      refreshIntervalMs: 15 * 60_000,
      logFormat: "json",
      debug: true,
    },
  );
  assert.deepEqual(scanKeepArgs(["--image-list-file", "/l"]), {
    imageListFile: "/l",
    refreshIntervalMs: 6 * 3_600_000,
    logFormat: "text",
    debug: false,
  });
});
