import assert from "node:assert/strict";
import { dedupeImages, type ImageListEntry, parseImageList } from "./list.ts";
import { parseImageReference } from "./reference.ts";

/** The (source, normalized) pairs of entries, for compact comparisons. */
function summary(entries: ImageListEntry[]): [string, string][] {
  return entries.map((entry) => [entry.source, entry.reference.normalized]);
}

Deno.test("parseImageList() reads one image per line with 1-based line numbers", () => {
  const { entries, problems } = parseImageList("debian:12\nquay.io/strimzi/kafka\n", "images.txt");
  assert.deepEqual(summary(entries), [
    ["images.txt:1", "docker.io/library/debian:12"],
    ["images.txt:2", "quay.io/strimzi/kafka:latest"],
  ]);
  assert.deepEqual(problems, []);
});

Deno.test("parseImageList() skips blanks and comments and tolerates CRLF, BOM and whitespace", () => {
  const cases: [string, string, [string, string][]][] = [
    ["empty text", "", []],
    ["only blank lines", "\n\n   \n\t\n", []],
    ["full-line comments", "# header\n  # indented\ndebian\n", [[
      "l:3",
      "docker.io/library/debian:latest",
    ]]],
    ["trailing comment", "debian:12 # the base\n", [["l:1", "docker.io/library/debian:12"]]],
    ["trailing comment after a tab", "debian:12\t#x", [["l:1", "docker.io/library/debian:12"]]],
    ["CRLF line endings", "a\r\nb # c\r\n\r\nd\r\n", [
      ["l:1", "docker.io/library/a:latest"],
      ["l:2", "docker.io/library/b:latest"],
      ["l:4", "docker.io/library/d:latest"],
    ]],
    ["UTF-8 BOM", "\uFEFFdebian\n", [["l:1", "docker.io/library/debian:latest"]]],
    ["surrounding whitespace", "   debian:12   \n", [["l:1", "docker.io/library/debian:12"]]],
    ["no trailing newline", "a\nb", [
      ["l:1", "docker.io/library/a:latest"],
      ["l:2", "docker.io/library/b:latest"],
    ]],
  ];
  for (const [name, text, expected] of cases) {
    const { entries, problems } = parseImageList(text, "l");
    assert.deepEqual(summary(entries), expected, name);
    assert.deepEqual(problems, [], name);
  }
});

Deno.test("parseImageList() reports invalid lines as problems and still returns valid ones", () => {
  const text = "debian\nDebian:1\n\nbusybox extra\nnginx#1 # comment\nalpine\n";
  const { entries, problems } = parseImageList(text, "images.txt");
  assert.deepEqual(summary(entries), [
    ["images.txt:1", "docker.io/library/debian:latest"],
    ["images.txt:6", "docker.io/library/alpine:latest"],
  ]);
  assert.deepEqual(problems.map((p) => [p.source, p.text]), [
    ["images.txt:2", "Debian:1"],
    ["images.txt:4", "busybox extra"],
    ["images.txt:5", "nginx#1"],
  ]);
  assert.match(problems[0].message, /^"Debian:1" is not a valid image reference: .*lowercase/);
  assert.match(problems[1].message, /^"busybox extra" is not a valid image reference: /);
});

Deno.test("parseImageList() keeps duplicates so callers can report them", () => {
  const { entries } = parseImageList("debian\ndebian\n", "f");
  assert.equal(entries.length, 2);
});

Deno.test("dedupeImages() keeps the first entry per normalised reference, in order", () => {
  const entry = (text: string, source: string): ImageListEntry => ({
    reference: parseImageReference(text),
    source,
  });
  const entries = [
    entry("debian", "a:1"),
    entry("busybox:1", "a:2"),
    entry("docker.io/library/debian:latest", "a:3"),
    entry("index.docker.io/library/debian", "arg 1"),
    entry("debian:12", "a:4"),
    entry("busybox:1", "a:5"),
  ];
  assert.deepEqual(dedupeImages(entries).map((e) => e.source), ["a:1", "a:2", "a:4"]);
  assert.deepEqual(dedupeImages([]), []);
  assert.equal(entries.length, 6, "input is not modified");
});
