import assert from "node:assert/strict";
import { parseProviderConfig, ProviderConfigError } from "./provider_config.ts";

const V1 = "credentialprovider.kubelet.k8s.io/v1";

function config(providers: unknown[], apiVersion = "kubelet.config.k8s.io/v1"): string {
  return JSON.stringify({ apiVersion, kind: "CredentialProviderConfig", providers });
}

const ecr = {
  name: "ecr-credential-provider",
  matchImages: ["*.dkr.ecr.*.amazonaws.com", "*.dkr.ecr.*.amazonaws.com.cn"],
  defaultCacheDuration: "12h",
  apiVersion: V1,
  args: ["get-credentials"],
  env: [{ name: "AWS_PROFILE", value: "node" }],
};

Deno.test("parseProviderConfig() reads the kubelet's v1 config from JSON and YAML alike", () => {
  const fromJson = parseProviderConfig(config([ecr]), "c.json");
  const fromYaml = parseProviderConfig(
    `apiVersion: kubelet.config.k8s.io/v1
kind: CredentialProviderConfig
providers:
  - name: ecr-credential-provider
    matchImages:
      - "*.dkr.ecr.*.amazonaws.com"
      - "*.dkr.ecr.*.amazonaws.com.cn"
    defaultCacheDuration: 12h
    apiVersion: ${V1}
    args: [get-credentials]
    env:
      - name: AWS_PROFILE
        value: node
`,
    "c.yaml",
  );
  assert.deepEqual(fromJson, fromYaml);
  assert.deepEqual(fromJson, [{
    name: "ecr-credential-provider",
    matchImages: ecr.matchImages,
    defaultCacheDurationMs: 12 * 3600_000,
    apiVersion: V1,
    args: ["get-credentials"],
    env: [{ name: "AWS_PROFILE", value: "node" }],
  }]);
});

Deno.test("parseProviderConfig() refuses what the kubelet refuses, naming the fix", () => {
  const cases: Array<[string, string, RegExp]> = [
    ["not yaml", "{", /neither YAML nor JSON/],
    [
      "older version",
      config([ecr], "kubelet.config.k8s.io/v1beta1"),
      /only kubelet.config.k8s.io\/v1 is read/,
    ],
    [
      "wrong kind",
      JSON.stringify({ apiVersion: "kubelet.config.k8s.io/v1", kind: "X" }),
      /must be CredentialProviderConfig/,
    ],
    ["no providers", config([]), /has no providers/],
    ["path in name", config([{ ...ecr, name: "../bin/x" }]), /file name in the plugin directory/],
    ["no matchImages", config([{ ...ecr, matchImages: [] }]), /has no matchImages/],
    ["scheme in glob", config([{ ...ecr, matchImages: ["https://gcr.io"] }]), /without a scheme/],
    [
      "no cache duration",
      config([{ ...ecr, defaultCacheDuration: undefined }]),
      /needs defaultCacheDuration/,
    ],
    [
      "bad cache duration",
      config([{ ...ecr, defaultCacheDuration: "-1h" }]),
      /defaultCacheDuration/,
    ],
    [
      "bad protocol",
      config([{ ...ecr, apiVersion: "credentialprovider.kubelet.k8s.io/v2" }]),
      /use one of/,
    ],
    ["duplicate", config([ecr, ecr]), /twice/],
    ["bad env", config([{ ...ecr, env: [{ name: "A=B", value: "x" }] }]), /env entries/],
    ["bad args", config([{ ...ecr, args: [1] }]), /args/],
    [
      "token mode",
      config([{ ...ecr, tokenAttributes: { serviceAccountTokenAudience: "a" } }]),
      /tokenAttributes/,
    ],
  ];
  for (const [what, text, message] of cases) {
    assert.throws(() => parseProviderConfig(text, "node.yaml"), (error: Error) => {
      assert.ok(error instanceof ProviderConfigError, what);
      assert.match(error.message, /^credential provider config node\.yaml: /, what);
      assert.match(error.message, message, what);
      return true;
    });
  }
});

Deno.test("parseProviderConfig() accepts the older protocol versions a v1 config may name", () => {
  for (
    const apiVersion of [
      "credentialprovider.kubelet.k8s.io/v1beta1",
      "credentialprovider.kubelet.k8s.io/v1alpha1",
    ]
  ) {
    assert.equal(
      parseProviderConfig(config([{ ...ecr, apiVersion }]), "c")[0].apiVersion,
      apiVersion,
    );
  }
});
