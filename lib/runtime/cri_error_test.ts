import assert from "node:assert/strict";
import { CriError, pullRefusal } from "./cri_error.ts";

/** A failed PullImage as the CRI client wraps it. */
const pullFailed = (code: number, details: string) =>
  new CriError("PullImage", { code, details, message: details });
const UNKNOWN = 2, NOT_FOUND = 5, INVALID_ARGUMENT = 3;

Deno.test("pullRefusal recognises containerd's words", () => {
  const cases: Array<[number, string, ReturnType<typeof pullRefusal>]> = [
    [
      NOT_FOUND,
      'failed to pull and unpack image "127.0.0.1:5000/e2e/none:v1": failed to resolve ' +
      'reference "127.0.0.1:5000/e2e/none:v1": 127.0.0.1:5000/e2e/none:v1: not found',
      "not-found",
    ],
    [INVALID_ARGUMENT, 'failed to parse image reference "UPPER/case": invalid', "not-found"],
    [
      NOT_FOUND,
      'failed to pull and unpack image "127.0.0.1:5000/big/app:v1": failed to prepare extraction ' +
      'snapshot "extract-104-sha256:9f2c": parent snapshot sha256:77a1 does not exist: not found',
      undefined,
    ],
    [
      UNKNOWN,
      'failed to resolve reference "127.0.0.1:5000/p/app:v1": pulling from host 127.0.0.1:5000 ' +
      "failed with status code [manifests v1]: 401 Unauthorized",
      "unauthorized",
    ],
    [
      UNKNOWN,
      'failed to resolve reference "127.0.0.1:5000/p/app:v1": pull access denied, repository ' +
      "does not exist or may require authorization: authorization failed: no basic auth " +
      "credentials",
      "unauthorized",
    ],
    [
      UNKNOWN,
      'failed to resolve reference "ghcr.io/o/a:v1": failed to authorize: failed to fetch oauth ' +
      "token: unexpected status from GET request to https://ghcr.io/token: 403 Forbidden",
      "unauthorized",
    ],
    [
      UNKNOWN,
      "failed to copy: httpReadSeeker: failed open: unexpected status code " +
      "https://127.0.0.1:5000/v2/p/app/blobs/sha256:ab: 503 Service Unavailable",
      undefined,
    ],
  ];
  for (const [code, details, expected] of cases) {
    assert.equal(pullRefusal(pullFailed(code, details)), expected, details);
  }
});

Deno.test("pullRefusal recognises CRI-O's words (containers/image's errors, gRPC UNKNOWN)", () => {
  const source = "initializing source docker://127.0.0.1:5000/cp/a:v1";
  const manifest = "reading manifest v1 in 127.0.0.1:5000/cp/a";
  const cases: Array<[string, ReturnType<typeof pullRefusal>]> = [
    // MANIFEST_UNKNOWN with its default message: an unknown tag.
    [`${source}: ${manifest}: manifest unknown`, "not-found"],
    // NAME_UNKNOWN: an unknown repository, by its default message or the registry's own.
    [`${source}: ${manifest}: repository name not known to registry`, "not-found"],
    [`${source}: ${manifest}: name unknown: repository cp/a not found`, "not-found"],
    // Newer CRI-O tries an OCI artifact after a failed image pull and names both errors.
    [
      `unable to pull image or OCI artifact: pull image err: ${source}: ${manifest}: manifest ` +
      "unknown; artifact err: provided artifact is a container image",
      "not-found",
    ],
    // UNAUTHORIZED: a basic-auth registry refusing the password, by the default message or not.
    [`${source}: ${manifest}: authentication required`, "unauthorized"],
    [
      "initializing source docker://quay.io/org/private:v1: reading manifest v1 in " +
      "quay.io/org/private: unauthorized: access to the requested resource is not authorized",
      "unauthorized",
    ],
    // A token server refusing the credentials (ErrUnauthorizedForCredentials).
    [
      "initializing source docker://ghcr.io/o/a:v1: unable to retrieve auth token: invalid " +
      "username/password: unauthorized: authentication required",
      "unauthorized",
    ],
    // DENIED: docker.io for a repository that does not exist or is private, and ECR's expiry.
    [
      "initializing source docker://docker.io/library/nope:latest: reading manifest latest in " +
      "docker.io/library/nope: requested access to the resource is denied",
      "unauthorized",
    ],
    [
      "initializing source docker://1.dkr.ecr.eu-west-1.amazonaws.com/app:v1: reading manifest " +
      "v1 in 1.dkr.ecr.eu-west-1.amazonaws.com/app: denied: Your authorization token has " +
      "expired. Reauthenticate and try again.",
      "unauthorized",
    ],
    // Worth retrying: the registry away, rate limits, a broken transfer, a server error.
    [
      "RegistryUnavailable: pinging container registry 127.0.0.1:5000: Get " +
      '"https://127.0.0.1:5000/v2/": dial tcp 127.0.0.1:5000: connect: connection refused',
      undefined,
    ],
    [`${source}: ${manifest}: too many requests`, undefined],
    [
      "reading blob sha256:ab: fetching blob: received unexpected HTTP status: 503 Service " +
      "Unavailable",
      undefined,
    ],
    [
      'writing blob: storing blob to file "/var/tmp/storage1/1": happened during read: ' +
      "unexpected EOF",
      undefined,
    ],
    // The node's own storage refusing is no registry refusing credentials.
    [
      "creating overlay mount to /var/lib/containers/storage/overlay/ab/merged: permission " +
      "denied",
      undefined,
    ],
  ];
  for (const [details, expected] of cases) {
    assert.equal(pullRefusal(pullFailed(UNKNOWN, details)), expected, details);
  }
});

Deno.test("pullRefusal leaves errors that are not the runtime's answer alone", () => {
  assert.equal(pullRefusal(new Error("manifest unknown")), undefined);
  assert.equal(pullRefusal("401 Unauthorized"), undefined);
});
