import assert from "node:assert/strict";
import { JournalError, MetricsJournal, parseJournalLine } from "./journal.ts";
import type { MetricsResult } from "../protocol.ts";
import type { JournalRecord } from "./store_snapshot.ts";

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

async function reopen(path: string, options = {}) {
  const records: JournalRecord[] = [];
  const opened = await MetricsJournal.open(path, (record) => records.push(record), options);
  return { ...opened, replayed: records };
}

Deno.test("a reopened journal gives back every result appended, in order", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/results.ndjson`;
  try {
    {
      const opened = await reopen(path);
      assert.deepEqual([opened.replayed, opened.skipped], [[], 0]);
      using journal = opened.journal;
      journal.append([result(1), result(2)]);
      journal.append([]);
      journal.append([result(3)]);
    }
    const reopened = await reopen(path);
    reopened.journal.close();
    assert.deepEqual(reopened.replayed, [result(1), result(2), result(3)]);
    assert.deepEqual([reopened.records, reopened.skipped], [3, 0]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a line cut short by a crash is skipped and the next appends stay readable", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/results.ndjson`;
  try {
    await Deno.writeTextFile(path, JSON.stringify(result(1)) + "\n" + '{"attemptId":"id-2","no');
    const opened = await reopen(path);
    assert.deepEqual([opened.replayed.length, opened.skipped], [1, 1]);
    opened.journal.append([result(3)]);
    opened.journal.close();
    const again = await reopen(path);
    again.journal.close();
    assert.deepEqual(again.replayed.map((r) => "attemptId" in r && r.attemptId), ["id-1", "id-3"]);
    assert.equal(again.skipped, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a journal larger than a read chunk streams back whole, line by line", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/results.ndjson`;
  try {
    const many = Array.from({ length: 5_000 }, (_, i) => result(i));
    await Deno.writeTextFile(path, many.map((r) => JSON.stringify(r)).join("\n") + "\n");
    const opened = await reopen(path);
    opened.journal.close();
    assert.deepEqual(opened.replayed, many);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("past its bound the journal is rewritten from the snapshot, then appended to", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/results.ndjson`;
  try {
    // The store, as far as the journal knows: its snapshot is the last two results.
    const held: MetricsResult[] = [];
    const snapshot = () => [{ ...result(99), node: "snapshot" }, ...held.slice(-2)];
    const opened = await reopen(path, { compactAtBytes: 1_000, snapshot });
    for (let i = 0; i < 20; i++) {
      held.push(result(i));
      opened.journal.append([result(i)]);
    }
    assert.ok(opened.journal.compactions >= 1);
    opened.journal.close();
    const again = await reopen(path);
    again.journal.close();
    const ids = again.replayed.map((r) => "attemptId" in r && r.attemptId);
    assert.equal(ids.lastIndexOf("id-99"), 0, "the file starts with the last snapshot");
    assert.equal(ids.at(-1), "id-19", "and holds what was appended after it");
    assert.ok(ids.length < 20, `${ids.length} lines: old lines were dropped`);
    assert.equal(again.skipped, 0);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["results.ndjson"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("lines that are neither results nor compaction records are refused", () => {
  assert.ok(parseJournalLine(JSON.stringify(result(1))));
  assert.ok(parseJournalLine('{"kind":"image","image":"a"}'));
  for (const line of ["42", '{"node":"x"}', "not json", '{"kind":"node"}']) {
    assert.equal(parseJournalLine(line), undefined, line);
  }
});

Deno.test("an unusable path is one sentence naming the file and the fix", async () => {
  await assert.rejects(
    () => reopen("/proc/no-such-dir/results.ndjson"),
    (error: Error) => {
      assert.ok(error instanceof JournalError);
      assert.match(error.message, /\/proc\/no-such-dir\/results.ndjson/);
      assert.match(error.message, /--state-file/);
      return true;
    },
  );
});
