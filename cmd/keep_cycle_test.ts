import assert from "node:assert/strict";
import { InvalidInputError } from "../lib/core/exit_codes.ts";
import { keepHelp, parseKeepArgs } from "./keep_cycle.ts";

Deno.test("keep takes fetch's flags and its own; each cycle gets only fetch's", () => {
  const invocation = parseKeepArgs([
    "--image-list-file",
    "/etc/images/images",
    "--refresh-interval",
    "15m",
    "--pin",
    "--refresh-interval=20m",
    "--pin-owner",
    "my-images",
    "extra.io/a:1",
  ]); // deno-fmt-ignore
  assert.equal(invocation.kind, "run");
  if (invocation.kind !== "run") return;
  assert.equal(invocation.refreshIntervalMs, 20 * 60_000);
  assert.equal(invocation.imageListFile, "/etc/images/images");
  assert.deepEqual(invocation.fetchArgs, [
    "--image-list-file",
    "/etc/images/images",
    "--pin",
    "--pin-owner",
    "my-images",
    "extra.io/a:1",
  ]); // deno-fmt-ignore
  assert.equal(invocation.fetch.config.pinOwner, "my-images");
});

Deno.test("keep's bad invocations name the flag and the fix", () => {
  const cases: [string[], RegExp][] = [
    [["extra.io/a:1"], /add --image-list-file/],
    [["--image-list-file", "f", "--refresh-interval", "0s"], /--refresh-interval must be 1s/],
    [["--image-list-file", "f", "--refresh-interval", "soon"], /--refresh-interval/],
    [["--image-list-file", "f", "--pin-owner", "My_Images"], /--pin-owner must be a DNS label/],
    [["--image-list-file", "f", "--max-parallel", "x"], /--max-parallel/],
  ];
  for (const [args, message] of cases) {
    assert.throws(() => parseKeepArgs(args), (e) => e instanceof InvalidInputError, args.join(" "));
    assert.throws(() => parseKeepArgs(args), message);
  }
});

Deno.test("keep --help lists fetch's flags and its own", () => {
  const help = keepHelp();
  for (const flag of ["--refresh-interval", "--pin-owner", "--image-list-file", "--waves"]) {
    assert.ok(help.includes(flag), flag);
  }
});
