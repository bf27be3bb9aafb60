import assert from "node:assert/strict";
import {
  attributeManifests,
  distributionSourceLabelKey,
  ingestDigest,
  type ListedManifest,
  parseManifest,
  progressOf,
  repositoryManifestFilter,
} from "./containerd_progress.ts";
import { parseImageReference } from "../image/reference.ts";

const A = `sha256:${"a".repeat(64)}`;
const B = `sha256:${"b".repeat(64)}`;
const C = `sha256:${"c".repeat(64)}`;
const CONFIG = `sha256:${"f".repeat(64)}`;

Deno.test("distributionSourceLabelKey names the registry host without its port", () => {
  // containerd derives the key from url.Parse("dummy://" + locator).Hostname() of the
  // normalised reference CRI pulls.
  const table: [string, string][] = [
    ["127.0.0.1:5000/team/app:v1", "containerd.io/distribution.source.127.0.0.1"],
    ["localhost:5000/app", "containerd.io/distribution.source.localhost"],
    ["localhost/app", "containerd.io/distribution.source.localhost"],
    ["debian:12", "containerd.io/distribution.source.docker.io"],
    ["index.docker.io/library/debian:12", "containerd.io/distribution.source.docker.io"],
    ["quay.io/org/app@sha256:" + "a".repeat(64), "containerd.io/distribution.source.quay.io"],
    ["registry.example.com:443/a/b/c:1", "containerd.io/distribution.source.registry.example.com"],
    ["[::1]:5000/team/app:v1", "containerd.io/distribution.source.::1"],
  ];
  for (const [image, key] of table) {
    assert.equal(distributionSourceLabelKey(parseImageReference(image).registry), key, image);
  }
});

Deno.test("repositoryManifestFilter quotes the dotted label key and matches one list entry", () => {
  assert.equal(
    repositoryManifestFilter("127.0.0.1:5000", "team/app.v2"),
    `labels."containerd.io/distribution.source.127.0.0.1"~="(^|,)team/app\\\\.v2(,|$)",` +
      `labels."containerd.io/gc.ref.content.l.0"`,
  );
  // The regular expression (after containerd unquotes it) matches the repository as one entry
  // of the comma-separated label value, and nothing longer or shorter.
  const pattern = /"~="(.*)",labels/.exec(repositoryManifestFilter("docker.io", "library/a.b"))!;
  const regex = new RegExp(JSON.parse(`"${pattern[1]}"`));
  assert.ok(regex.test("library/a.b"));
  assert.ok(regex.test("library/a.b,library/c"));
  assert.ok(regex.test("library/0,library/a.b"));
  assert.ok(!regex.test("library/aXb"));
  assert.ok(!regex.test("library/a.bc"));
  assert.ok(!regex.test("x/library/a.b"));
});

Deno.test("ingestDigest takes the digest at the end of an ingest ref", () => {
  assert.equal(ingestDigest(`layer-${A}`), A);
  assert.equal(ingestDigest(`config-${B}`), B);
  assert.equal(ingestDigest(`manifest-${C}`), C);
  assert.equal(ingestDigest(`sha512:${"0".repeat(128)}`), `sha512:${"0".repeat(128)}`);
  assert.equal(ingestDigest("my-upload-1"), undefined);
  assert.equal(ingestDigest(`layer-sha256:${"a".repeat(63)}`), undefined);
});

Deno.test("parseManifest reads manifests and indexes, and nothing else", () => {
  const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
  assert.deepEqual(
    parseManifest(encode({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "x", digest: CONFIG, size: 300 },
      layers: [{ mediaType: "y", digest: A, size: 10, annotations: {} }, { digest: B, size: 20 }],
    })),
    {
      kind: "manifest",
      blobs: [{ digest: CONFIG, size: 300 }, { digest: A, size: 10 }, {
        digest: B,
        size: 20,
      }],
    },
  );
  assert.deepEqual(
    parseManifest(encode({
      schemaVersion: 2,
      manifests: [{ digest: A, size: 500, platform: { os: "linux" } }, { digest: B, size: 1 }],
    })),
    { kind: "index", manifests: [A, B] },
  );
  assert.deepEqual(parseManifest(encode({ schemaVersion: 1, fsLayers: [] })), { kind: "unknown" });
  assert.deepEqual(parseManifest(new TextEncoder().encode("{not json")), { kind: "unknown" });
  assert.deepEqual(parseManifest(encode(null)), { kind: "unknown" });
});

Deno.test("progressOf counts committed sizes and ingest offsets, each blob once", async (t) => {
  const manifest = [{ digest: CONFIG, size: 300 }, { digest: A, size: 3000 }, {
    digest: B,
    size: 4000,
  }];

  await t.step("nothing started: 0 of the total, no downloads", () => {
    assert.deepEqual(progressOf([manifest], { committed: new Map(), ingests: new Map() }), {
      receivedBytes: 0,
      totalBytes: 7300,
      activeDownloads: 0,
    });
  });

  await t.step("config committed, two layers downloading", () => {
    const state = {
      committed: new Map([[CONFIG, 300]]),
      ingests: new Map([[A, 1024], [B, 0]]),
    };
    assert.deepEqual(progressOf([manifest], state), {
      receivedBytes: 1324,
      totalBytes: 7300,
      activeDownloads: 2,
    });
  });

  await t.step("a blob committed between the two reads is counted once, as committed", () => {
    const state = {
      committed: new Map([[CONFIG, 300], [A, 3000]]),
      ingests: new Map([[A, 2048]]),
    };
    assert.deepEqual(progressOf([manifest], state), {
      receivedBytes: 3300,
      totalBytes: 7300,
      activeDownloads: 0,
    });
  });

  await t.step("two manifests sharing layers count the shared layer once", () => {
    const other = [{ digest: CONFIG, size: 300 }, { digest: A, size: 3000 }, {
      digest: C,
      size: 100,
    }];
    const state = { committed: new Map([[A, 3000]]), ingests: new Map([[C, 50]]) };
    assert.deepEqual(progressOf([manifest, other], state), {
      receivedBytes: 3050,
      totalBytes: 7400,
      activeDownloads: 1,
    });
  });

  await t.step("ingests of other images do not count", () => {
    const state = { committed: new Map(), ingests: new Map([[C, 4096]]) };
    assert.equal(progressOf([manifest], state).receivedBytes, 0);
  });

  await t.step("an offset is never counted beyond the blob's size", () => {
    const state = { committed: new Map(), ingests: new Map([[A, 10_000]]) };
    assert.equal(progressOf([manifest], state).receivedBytes, 3000);
  });
});

Deno.test("attributeManifests takes the repository's incomplete manifests and earlier ones", async (t) => {
  const ref = parseImageReference("127.0.0.1:5000/team/app:v2");
  const source = "containerd.io/distribution.source.127.0.0.1";
  const M1 = `sha256:${"1".repeat(64)}`;
  const M2 = `sha256:${"2".repeat(64)}`;
  const M3 = `sha256:${"3".repeat(64)}`;
  const manifest = (digest: string, labels: Record<string, string>, blobs: string[]) => ({
    digest,
    labels,
    blobs: blobs.map((d) => ({ digest: d, size: 1 })),
  });
  const none = new Set<string>();

  await t.step("an old complete manifest and a new incomplete one: the new one", () => {
    const listed: ListedManifest[] = [
      manifest(M1, { [source]: "team/app" }, [CONFIG, A]),
      manifest(M2, { [source]: "team/app" }, [CONFIG, A, B]),
    ];
    const committed = new Map([[CONFIG, 1], [A, 1]]);
    assert.deepEqual(attributeManifests(ref, listed, none, committed), [M2]);
  });

  await t.step("a manifest attributed before stays attributed once complete", () => {
    const listed = [manifest(M2, { [source]: "team/app" }, [A, B])];
    const committed = new Map([[A, 1], [B, 1]]);
    assert.deepEqual(attributeManifests(ref, listed, new Set([M2]), committed), [M2]);
    assert.deepEqual(attributeManifests(ref, listed, none, committed), []);
  });

  await t.step("the label value is a list of repositories; only whole entries match", () => {
    const listed = [
      manifest(M1, { [source]: "other/app,team/app" }, [A]),
      manifest(M2, { [source]: "team/app-old" }, [B]),
      manifest(M3, { [source]: "team/app/sub" }, [C]),
    ];
    assert.deepEqual(attributeManifests(ref, listed, none, new Map()), [M1]);
  });

  await t.step("another registry host's label does not match", () => {
    const listed = [
      manifest(M1, { "containerd.io/distribution.source.quay.io": "team/app" }, [A]),
    ];
    assert.deepEqual(attributeManifests(ref, listed, none, new Map()), []);
  });

  await t.step("two tags of one repository pulled at once: both manifests, for either tag", () => {
    const listed = [
      manifest(M1, { [source]: "team/app" }, [A]),
      manifest(M2, { [source]: "team/app" }, [B]),
    ];
    const other = parseImageReference("127.0.0.1:5000/team/app:v1");
    assert.deepEqual(attributeManifests(ref, listed, none, new Map()), [M1, M2]);
    assert.deepEqual(attributeManifests(other, listed, none, new Map()), [M1, M2]);
  });

  await t.step("a manifest without blobs (unreadable or unknown format) is skipped", () => {
    const listed = [manifest(M1, { [source]: "team/app" }, [])];
    assert.deepEqual(attributeManifests(ref, listed, new Set([M1]), new Map()), []);
  });

  await t.step("Docker Hub images are labelled with docker.io", () => {
    const hub = parseImageReference("debian:12");
    const listed = [
      manifest(M1, { "containerd.io/distribution.source.docker.io": "library/debian" }, [A]),
    ];
    assert.deepEqual(attributeManifests(hub, listed, none, new Map()), [M1]);
  });
});
