import assert from "node:assert/strict";
import { JournalError, MetricsJournal, parseJournal } from "./journal.ts";
import type { MetricsResult } from "../protocol.ts";

function result(i: number): MetricsResult {
  return {
    attemptId: `id-${i}`,
    startedAt: 1_700_000_000,
    image: "r/a:1",
    node: `node-${i}`,
    outcome: "pulled",
    attempt: 1,
    durationMs: 100 * i,
    sizeBytes: 1000,
  };
}

Deno.test("a reopened journal gives back every result appended, in order", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/results.ndjson`;
  try {
    {
      const opened = await MetricsJournal.open(path);
      assert.deepEqual([opened.results, opened.skipped], [[], 0]);
      using journal = opened.journal;
      journal.append([result(1), result(2)]);
      journal.append([]);
      journal.append([result(3)]);
    }
    const reopened = await MetricsJournal.open(path);
    reopened.journal.close();
    assert.deepEqual(reopened.results, [result(1), result(2), result(3)]);
    assert.equal(reopened.skipped, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a line cut short by a crash is skipped and the next appends stay readable", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/results.ndjson`;
  try {
    await Deno.writeTextFile(path, JSON.stringify(result(1)) + "\n" + '{"attemptId":"id-2","no');
    const opened = await MetricsJournal.open(path);
    assert.deepEqual([opened.results.length, opened.skipped], [1, 1]);
    opened.journal.append([result(3)]);
    opened.journal.close();
    const again = await MetricsJournal.open(path);
    again.journal.close();
    assert.deepEqual(again.results.map((r) => r.attemptId), ["id-1", "id-3"]);
    assert.equal(again.skipped, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("lines that are not results are counted, not fatal", () => {
  const replay = parseJournal(`${JSON.stringify(result(1))}\n42\n{"node":"x"}\nnot json\n\n`);
  assert.deepEqual([replay.results.length, replay.skipped], [1, 3]);
});

Deno.test("an unusable path is one sentence naming the file and the fix", async () => {
  await assert.rejects(
    () => MetricsJournal.open("/proc/no-such-dir/results.ndjson"),
    (error: Error) => {
      assert.ok(error instanceof JournalError);
      assert.match(error.message, /\/proc\/no-such-dir\/results.ndjson/);
      assert.match(error.message, /--state-file/);
      return true;
    },
  );
});
