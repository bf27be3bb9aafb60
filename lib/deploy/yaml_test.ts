import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { toYamlDocuments } from "./yaml.ts";

const TRICKY_STRINGS = [
  "",
  " leading space",
  "trailing space ",
  "yes",
  "No",
  "on",
  "OFF",
  "y",
  "N",
  "true",
  "False",
  "null",
  "~",
  "8080",
  "0x1F",
  "0o17",
  "1e3",
  ".5",
  ".inf",
  "-.inf",
  ".NaN",
  "1:20",
  "2024-01-01",
  "a: b",
  "a #b",
  "#comment",
  "- item",
  "--flag",
  "-",
  "? key",
  "[list]",
  "{map}",
  "*alias",
  "&anchor",
  "!tag",
  "%directive",
  "@at",
  "`tick",
  "'single'",
  '"double"',
  "back\\slash",
  "line\nbreak",
  "tab\there",
  "ünïcödé",
  "ghcr.io/x/image-prefetcher:v1.2.3",
  "/run/containerd/containerd.sock",
  "app.kubernetes.io/name",
  ".dockerconfigjson",
  "100%",
  "---",
  "...",
];

Deno.test("toYamlDocuments: every value reads back the same, in YAML 1.2 and 1.1", () => {
  const document = {
    strings: TRICKY_STRINGS,
    keys: Object.fromEntries(TRICKY_STRINGS.map((s, i) => [s, i])),
    numbers: [0, -1, 1.5, 65532, 1e21],
    booleans: [true, false],
    nothing: null,
    empty: { list: [], map: {} },
    nested: [[1, [2, []]], [{ a: { b: [{ c: "d" }] } }], {}],
    list: [{ name: "a", args: ["x", "y"], env: [{ name: "N", value: "1" }] }],
  };
  const text = toYamlDocuments([document, { second: "document" }]);
  for (const version of ["1.2", "1.1"] as const) {
    const parsed = parseAllDocuments(text, { version }).map((d) => {
      assert.deepEqual(d.errors, []);
      return d.toJS();
    });
    assert.deepEqual(parsed, [document, { second: "document" }], `YAML ${version}`);
  }
});

Deno.test("toYamlDocuments: manifests read like kubectl writes them", () => {
  assert.equal(
    toYamlDocuments([{
      apiVersion: "v1",
      kind: "Service",
      skipped: undefined,
      spec: { ports: [{ name: "grpc", port: 8443 }], selector: { "app.kubernetes.io/name": "x" } },
    }]),
    [
      "---",
      "apiVersion: v1",
      "kind: Service",
      "spec:",
      "  ports:",
      "    - name: grpc",
      "      port: 8443",
      "  selector:",
      "    app.kubernetes.io/name: x",
      "",
    ].join("\n"),
  );
});

Deno.test("toYamlDocuments: what JSON cannot say is a TypeError, not a silent loss", () => {
  for (const bad of [NaN, Infinity, 1n, () => 1, Symbol("s"), [undefined]]) {
    assert.throws(() => toYamlDocuments([{ bad }]), TypeError, String(bad));
  }
});
