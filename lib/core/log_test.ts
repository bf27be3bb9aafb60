import assert from "node:assert/strict";
import { formatBytes, Logger } from "./log.ts";

function capture(format: "text" | "json", debug = false) {
  const lines: string[] = [];
  const logger = new Logger({ format, debug, write: (l) => lines.push(l), now: () => 0 });
  return { logger, lines };
}

Deno.test("text lines are one event each, with key=value fields and quoted values", () => {
  const { logger, lines } = capture("text");
  logger.info("pull attempt failed", {
    image: "a:1",
    attempt: 2,
    error: 'x "y" z',
    skip: undefined,
  });
  assert.deepEqual(lines, [
    '1970-01-01T00:00:00.000Z INFO  pull attempt failed image=a:1 attempt=2 error="x \\"y\\" z"',
  ]);
});

Deno.test("json lines parse back with every field", () => {
  const { logger, lines } = capture("json");
  logger.warn("slow", { image: "a:1", attempt: 1 });
  assert.deepEqual(JSON.parse(lines[0]), {
    time: "1970-01-01T00:00:00.000Z",
    level: "warn",
    msg: "slow",
    image: "a:1",
    attempt: 1,
  });
});

Deno.test("debug lines appear only with debug on", () => {
  const quiet = capture("text");
  quiet.logger.debug("detail");
  assert.equal(quiet.lines.length, 0);
  const loud = capture("text", true);
  loud.logger.debug("detail");
  assert.equal(loud.lines.length, 1);
});

Deno.test("byte counts read naturally", () => {
  assert.deepEqual(
    [0, 512, 1536, 30 * 1024 ** 2, 2.1 * 1024 ** 3].map(formatBytes),
    ["0 B", "512 B", "1.5 KiB", "30.0 MiB", "2.10 GiB"],
  );
});
