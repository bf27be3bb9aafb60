import assert from "node:assert/strict";
import { encodeRequest, parseResponse, ProviderResponseError } from "./provider_response.ts";

const V1 = "credentialprovider.kubelet.k8s.io/v1";

function response(fields: Record<string, unknown>): string {
  return JSON.stringify({ apiVersion: V1, kind: "CredentialProviderResponse", ...fields });
}

Deno.test("encodeRequest() writes the request the kubelet writes", () => {
  assert.deepEqual(JSON.parse(encodeRequest("gcr.io/p/app", V1)), {
    apiVersion: V1,
    kind: "CredentialProviderRequest",
    image: "gcr.io/p/app",
  });
});

Deno.test("parseResponse() reads key type, duration and auth in order", () => {
  const parsed = parseResponse(
    response({
      cacheKeyType: "Image",
      cacheDuration: "1h30m",
      auth: { "*.gcr.io": { username: "_token", password: "ya29" }, "gcr.io": { username: "u" } },
    }),
    V1,
  );
  assert.deepEqual(parsed, {
    cacheKeyType: "Image",
    cacheDurationMs: 5_400_000,
    auth: [
      { serverAddress: "*.gcr.io", username: "_token", password: "ya29" },
      { serverAddress: "gcr.io", username: "u" },
    ],
  });
  assert.equal(parseResponse(response({ cacheKeyType: "Global" }), V1).cacheDurationMs, undefined);
});

Deno.test("parseResponse() refuses bad answers without quoting secrets", () => {
  const secret = "hunter2-secret";
  const cases: Array<[string, RegExp]> = [
    [`password: ${secret}`, /not a CredentialProviderResponse/],
    [`{"auth": "${secret}"`, /neither JSON nor YAML/],
    [
      response({ apiVersion: "credentialprovider.kubelet.k8s.io/v1beta1", cacheKeyType: "Image" }),
      /not the configured/,
    ],
    [JSON.stringify({ apiVersion: V1, kind: "Other", cacheKeyType: "Image" }), /kind "Other"/],
    [response({ cacheKeyType: "Pod" }), /must be Image, Registry or Global/],
    [response({ cacheKeyType: "Image", cacheDuration: "soon" }), /not a duration/],
    [
      response({ cacheKeyType: "Image", auth: { "gcr.io": { password: 7 } } }),
      /not \{username, password\}/,
    ],
    [response({ cacheKeyType: "Image", auth: [secret] }), /auth that is not a map/],
  ];
  for (const [text, message] of cases) {
    assert.throws(() => parseResponse(text, V1), (error: Error) => {
      assert.ok(error instanceof ProviderResponseError);
      assert.match(error.message, message);
      assert.ok(!error.message.includes(secret), error.message);
      return true;
    });
  }
});
