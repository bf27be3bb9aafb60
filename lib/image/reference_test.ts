import assert from "node:assert/strict";
import {
  type ImageReference,
  InvalidImageReferenceError,
  isPinned,
  parseImageReference,
} from "./reference.ts";

const HEX = "0123456789abcdef".repeat(4);
const DIGEST = `sha256:${HEX}`;

Deno.test("parseImageReference() normalises references like ParseNormalizedNamed + TagNameOnly", () => {
  const cases: [string, Omit<ImageReference, "original">][] = [
    ["debian", {
      registry: "docker.io",
      repository: "library/debian",
      tag: "latest",
      normalized: "docker.io/library/debian:latest",
    }],
    ["debian:12", {
      registry: "docker.io",
      repository: "library/debian",
      tag: "12",
      normalized: "docker.io/library/debian:12",
    }],
    ["user/app:1", {
      registry: "docker.io",
      repository: "user/app",
      tag: "1",
      normalized: "docker.io/user/app:1",
    }],
    ["docker.io/debian", {
      registry: "docker.io",
      repository: "library/debian",
      tag: "latest",
      normalized: "docker.io/library/debian:latest",
    }],
    ["index.docker.io/x", {
      registry: "docker.io",
      repository: "library/x",
      tag: "latest",
      normalized: "docker.io/library/x:latest",
    }],
    ["index.docker.io/user/x:2", {
      registry: "docker.io",
      repository: "user/x",
      tag: "2",
      normalized: "docker.io/user/x:2",
    }],
    [`localhost:5000/a/b@${DIGEST}`, {
      registry: "localhost:5000",
      repository: "a/b",
      digest: DIGEST,
      normalized: `localhost:5000/a/b@${DIGEST}`,
    }],
    ["localhost/app", {
      registry: "localhost",
      repository: "app",
      tag: "latest",
      normalized: "localhost/app:latest",
    }],
    ["quay.io/strimzi/kafka:latest-kafka-3.7.0", {
      registry: "quay.io",
      repository: "strimzi/kafka",
      tag: "latest-kafka-3.7.0",
      normalized: "quay.io/strimzi/kafka:latest-kafka-3.7.0",
    }],
    [`127.0.0.1:5000/x:tag@${DIGEST}`, {
      registry: "127.0.0.1:5000",
      repository: "x",
      tag: "tag",
      digest: DIGEST,
      normalized: `127.0.0.1:5000/x:tag@${DIGEST}`,
    }],
    [`debian@${DIGEST}`, {
      registry: "docker.io",
      repository: "library/debian",
      digest: DIGEST,
      normalized: `docker.io/library/debian@${DIGEST}`,
    }],
    ["[::1]:5000/app:v1", {
      registry: "[::1]:5000",
      repository: "app",
      tag: "v1",
      normalized: "[::1]:5000/app:v1",
    }],
    ["Registry.Example.com/team/app", {
      registry: "Registry.Example.com",
      repository: "team/app",
      tag: "latest",
      normalized: "Registry.Example.com/team/app:latest",
    }],
    ["gcr.io/a/b/c/d:V1_x.y-z", {
      registry: "gcr.io",
      repository: "a/b/c/d",
      tag: "V1_x.y-z",
      normalized: "gcr.io/a/b/c/d:V1_x.y-z",
    }],
    ["my-registry:8080/a__b/c---d/e.f_g", {
      registry: "my-registry:8080",
      repository: "a__b/c---d/e.f_g",
      tag: "latest",
      normalized: "my-registry:8080/a__b/c---d/e.f_g:latest",
    }],
    // As in distribution: without "/" the text is a Docker Hub name, so ":5000" is a tag.
    ["example.com:5000", {
      registry: "docker.io",
      repository: "library/example.com",
      tag: "5000",
      normalized: "docker.io/library/example.com:5000",
    }],
    [`reg.io/app@sha512:${HEX}${HEX}`, {
      registry: "reg.io",
      repository: "app",
      digest: `sha512:${HEX}${HEX}`,
      normalized: `reg.io/app@sha512:${HEX}${HEX}`,
    }],
  ];
  for (const [text, expected] of cases) {
    assert.deepEqual(parseImageReference(text), { ...expected, original: text }, text);
  }
});

Deno.test("parseImageReference() trims surrounding whitespace but keeps the original text", () => {
  const ref = parseImageReference("  \tdebian:12\r\n");
  assert.equal(ref.normalized, "docker.io/library/debian:12");
  assert.equal(ref.original, "  \tdebian:12\r\n");
});

Deno.test("parseImageReference() accepts a 255-character name and rejects a 256-character one", () => {
  const fits = `reg.io/${"a".repeat(255 - "reg.io/".length)}`;
  assert.equal(parseImageReference(fits).repository.length, 248);
  assert.throws(() => parseImageReference(`${fits}a:1`), /256 characters long, over the limit/);
  // Docker Hub names count with their implicit "docker.io/library/" prefix.
  const hub = "a".repeat(255 - "docker.io/library/".length);
  assert.equal(parseImageReference(hub).normalized, `docker.io/library/${hub}:latest`);
  assert.throws(() => parseImageReference(`${hub}b`), InvalidImageReferenceError);
});

Deno.test("parseImageReference() accepts a 128-character tag and rejects a 129-character one", () => {
  assert.equal(parseImageReference(`app:${"t".repeat(128)}`).tag?.length, 128);
  assert.throws(() => parseImageReference(`app:${"t".repeat(129)}`), /the tag "t+" must be/);
});

Deno.test("parseImageReference() rejects invalid references with a message naming the text and the problem", () => {
  const cases: [string, RegExp][] = [
    ["", /it is empty/],
    ["   ", /it is empty/],
    ["Debian:1", /repository names must be lowercase/],
    ["user/App", /repository names must be lowercase/],
    ["Foo/bar", /repository names must be lowercase/],
    ["quay.io/Org/app", /repository names must be lowercase/],
    ["debian 12", /contains whitespace/],
    [HEX, /image ID, not a reference/],
    ["debian:", /the tag "" must be/],
    ["debian:-x", /the tag "-x" must be/],
    ["debian:.x", /the tag ".x" must be/],
    ["debian:a:b", /the tag "a:b" must be/],
    // As in distribution, a first component with ":" is a registry host, so this is not a tag.
    ["debian:a/b", /registry host "debian:a" is not a valid/],
    ["/debian", /empty component/],
    ["quay.io/a//b", /empty component/],
    ["quay.io/", /empty component/],
    ["quay.io/a/", /empty component/],
    ["_debian", /component "_debian" must be lowercase letters and digits/],
    ["a-/b", /component "a-" must be/],
    ["x/a..b", /component "a..b" must be/],
    ["a..b/c", /registry host "a..b" is not a valid/],
    ["a___b/c", /component "a___b" must be/],
    ["debian#1", /component "debian#1" must be/],
    ["-bad.io/app", /registry host "-bad.io" is not a valid/],
    ["bad_host.io/app", /registry host "bad_host.io" is not a valid/],
    ["host.io:port/app", /registry host "host.io:port" is not a valid/],
    ["debian@", /the digest "" must look like/],
    ["debian@sha256", /the digest "sha256" must look like/],
    ["debian@sha256:abc", /the digest "sha256:abc" must look like/],
    [`debian@sha256:${HEX}0`, /a sha256 digest must be followed by 64 lowercase hex/],
    [`debian@sha256:${HEX.toUpperCase()}`, /64 lowercase hex/],
    [`debian@md5:${HEX}`, /digest algorithm "md5" is not supported/],
    [`debian@${DIGEST}@${DIGEST}`, /the digest ".*" must look like/],
  ];
  for (const [text, problem] of cases) {
    assert.throws(() => parseImageReference(text), (error: unknown) => {
      assert.ok(error instanceof InvalidImageReferenceError, `${JSON.stringify(text)} is rejected`);
      assert.equal(error.name, "InvalidImageReferenceError");
      assert.equal(error.reference, text);
      assert.ok(
        error.message.startsWith(`${JSON.stringify(text)} is not a valid image reference: `),
        error.message,
      );
      assert.match(error.message, problem);
      assert.ok(error.message.endsWith(`"registry.example.com/team/app@sha256:<digest>".`));
      return true;
    });
  }
});

Deno.test("InvalidImageReferenceError message matches the documented example", () => {
  assert.throws(
    () => parseImageReference("Debian:1"),
    {
      message: `"Debian:1" is not a valid image reference: repository names must be lowercase; ` +
        `write it like "debian:12" or "registry.example.com/team/app@sha256:<digest>".`,
    },
  );
});

Deno.test("isPinned() is true for a digest or a tag other than latest", () => {
  const cases: [string, boolean][] = [
    ["debian", false],
    ["debian:latest", false],
    ["debian:12", true],
    ["quay.io/strimzi/kafka:latest-kafka-3.7.0", true],
    [`debian@${DIGEST}`, true],
    [`debian:latest@${DIGEST}`, true],
  ];
  for (const [text, expected] of cases) {
    assert.equal(isPinned(parseImageReference(text)), expected, text);
  }
});
