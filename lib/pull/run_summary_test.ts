import assert from "node:assert/strict";
import { formatSummaryText, summarize } from "./run_summary.ts";
import type { ImageResult } from "./scheduler.ts";

const results: ImageResult[] = [
  { image: "r/a:1", status: "pulled", attempts: 2, elapsedMs: 3_000, sizeBytes: 2048 },
  { image: "r/b:1", status: "present", attempts: 0, elapsedMs: 10, sizeBytes: 1024 },
  {
    image: "r/c:1",
    status: "failed",
    attempts: 1,
    elapsedMs: 50,
    error: "r/c:1: not found",
    failure: "permanent",
  },
];

Deno.test("the summary counts each outcome and adds up the bytes on the node", () => {
  const summary = summarize("node-1", results, 3_500, 1);
  assert.deepEqual(
    [summary.pulled, summary.present, summary.failed, summary.invalid, summary.totalBytes],
    [1, 1, 1, 1, 3072],
  );
});

Deno.test("the text summary has a row per image, each failure's error and the totals", () => {
  const text = formatSummaryText(summarize("node-1", results, 3_500));
  const lines = text.split("\n");
  assert.match(lines[0], /^RESULT\s+ATTEMPTS\s+SIZE\s+DONE AFTER\s+IMAGE$/);
  assert.match(lines[1], /^pulled\s+2\s+2\.0 KiB\s+3s\s+r\/a:1$/);
  assert.match(lines[3], /^FAILED \(permanent\)\s+1\s+-\s+50ms\s+r\/c:1$/);
  assert.equal(lines[4], "error: r/c:1: r/c:1: not found");
  assert.equal(
    lines[5],
    "node node-1: 1 pulled, 1 already present, 1 failed; 3.0 KiB on the node; wall time 3.5s",
  );
});
