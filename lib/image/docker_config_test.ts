import assert from "node:assert/strict";
import { inspect } from "node:util";
import {
  credentialsFor,
  describeCredential,
  DockerConfig,
  DockerConfigError,
  parseDockerConfig,
  type RegistryCredential,
} from "./docker_config.ts";
import { parseImageReference } from "./reference.ts";

const SECRET = "s3cr3t-hunter2";
const b64 = (text: string) => btoa(text);

Deno.test("parseDockerConfig() reads the auths form and decodes auth into username and password", () => {
  const auth = b64(`alice:${SECRET}`);
  const config = parseDockerConfig(
    JSON.stringify({ auths: { "registry.example.com": { auth, email: "a@example.com" } } }),
    "/etc/config.json",
  );
  assert.equal(config.source, "/etc/config.json");
  assert.deepEqual(config.credentials, [
    { serverAddress: "registry.example.com", username: "alice", password: SECRET, auth },
  ]);
});

Deno.test("parseDockerConfig() reads entries in both file forms", () => {
  const cases: [string, unknown, RegistryCredential[]][] = [
    ["legacy .dockercfg map", {
      "https://index.docker.io/v1/": { username: "bob", password: "pw", email: "b@x" },
    }, [{ serverAddress: "https://index.docker.io/v1/", username: "bob", password: "pw" }]],
    ["explicit username and password win over auth", {
      auths: { r: { username: "u", password: "p", auth: b64("other:x") } },
    }, [{ serverAddress: "r", username: "u", password: "p", auth: b64("other:x") }]],
    ["auth fills only the missing field", {
      auths: { r: { username: "u", auth: b64("other:x") } },
    }, [{ serverAddress: "r", username: "u", password: "x", auth: b64("other:x") }]],
    ["password containing colons", {
      auths: { r: { auth: b64("u:a:b:c") } },
    }, [{ serverAddress: "r", username: "u", password: "a:b:c", auth: b64("u:a:b:c") }]],
    ["UTF-8 in auth", {
      auths: { r: { auth: b64(String.fromCharCode(...new TextEncoder().encode("jörg:pä"))) } },
    }, [{
      serverAddress: "r",
      username: "jörg",
      password: "pä",
      auth: b64(String.fromCharCode(...new TextEncoder().encode("jörg:pä"))),
    }]],
    ["unpadded auth", {
      auths: { r: { auth: "YTpi" + "YQ" } },
    }, [{ serverAddress: "r", username: "a", password: "ba", auth: "YTpiYQ" }]],
    ["tokens", {
      auths: { r: { identitytoken: "id-tok", registrytoken: "reg-tok" } },
    }, [{ serverAddress: "r", identityToken: "id-tok", registryToken: "reg-tok" }]],
    ["field names match case-insensitively like Go", {
      auths: { r: { Username: "u", PASSWORD: "p", IdentityToken: "t" } },
    }, [{ serverAddress: "r", username: "u", password: "p", identityToken: "t" }]],
    ["null and empty fields are absent, unknown fields ignored", {
      auths: { r: { username: null, password: "", auth: "", serveraddress: "x", n: 1 } },
    }, [{ serverAddress: "r" }]],
    ["empty auths", { auths: {} }, []],
    ["config.json using a credential store", { credsStore: "desktop" }, []],
    ["credential helpers beside auths", {
      auths: { r: { auth: b64("a:b") } },
      credHelpers: { "gcr.io": "gcloud" },
    }, [{ serverAddress: "r", username: "a", password: "b", auth: b64("a:b") }]],
    ["several registries in file order", {
      auths: { "b.io": { username: "1" }, "a.io": { username: "2" } },
    }, [{ serverAddress: "b.io", username: "1" }, { serverAddress: "a.io", username: "2" }]],
  ];
  for (const [name, json, expected] of cases) {
    assert.deepEqual(parseDockerConfig(JSON.stringify(json), "f").credentials, expected, name);
  }
});

Deno.test("parseDockerConfig() ignores a leading UTF-8 BOM", () => {
  const config = parseDockerConfig(`\uFEFF{"auths":{"r":{"username":"u"}}}`, "f");
  assert.deepEqual(config.credentials, [{ serverAddress: "r", username: "u" }]);
});

Deno.test("parseDockerConfig() rejects unusable files with a DockerConfigError naming the file, without secrets", () => {
  const cases: [string, string, RegExp][] = [
    ["invalid JSON", `{"auths": {`, /is not valid JSON \(.+\)/],
    ["JSON with a bare secret", `{"auths":{"r":{"password": ${SECRET}}}}`, /is not valid JSON/],
    ["JSON with a trailing secret", `{"auths":{}} ${SECRET}`, /is not valid JSON \(.*position/],
    ["empty file", "", /is not valid JSON \(Unexpected end of JSON input\)/],
    [
      "an unexpected line break",
      `{"auths": t\nrue}`,
      /is not valid JSON \(Unexpected token '\\n'\)/,
    ],
    ["an array", "[]", /does not hold a JSON object \(found an array\)/],
    ["null", "null", /does not hold a JSON object \(found null\)/],
    ["a string", `"${SECRET}"`, /does not hold a JSON object \(found a string\)/],
    [
      "auths not an object",
      `{"auths": []}`,
      /"auths" field that is not an object \(found an array\)/,
    ],
    [
      "entry not an object",
      `{"auths": {"r.io": "${SECRET}"}}`,
      /entry for registry "r.io" that is not an object \(found a string\)/,
    ],
    [
      "legacy entry not an object",
      `{"r.io": 1}`,
      /entry for registry "r.io" that is not an object/,
    ],
    [
      "password not a string",
      `{"auths": {"r.io": {"password": 12345}}}`,
      /"password" for registry "r.io" that is not a string \(found a number\)/,
    ],
    [
      "auth not a string",
      `{"auths": {"r.io": {"auth": true}}}`,
      /"auth" for registry "r.io" that is not a string/,
    ],
    [
      "email not a string",
      `{"auths": {"r.io": {"email": {}}}}`,
      /"email" for registry "r.io" that is not a string/,
    ],
    [
      "auth not base64",
      `{"auths": {"r.io": {"auth": "${SECRET}!"}}}`,
      /"auth" for registry "r.io" that is not base64 of "user:password"/,
    ],
    [
      "auth with bad length",
      `{"auths": {"r.io": {"auth": "YWJjZ"}}}`,
      /"auth" for registry "r.io" that is not base64/,
    ],
    [
      "auth without a colon",
      `{"auths": {"r.io": {"auth": "${b64(SECRET)}"}}}`,
      /"auth" for registry "r.io" that is not base64 of "user:password"/,
    ],
  ];
  for (const [name, text, problem] of cases) {
    assert.throws(() => parseDockerConfig(text, "/path/config.json"), (error: unknown) => {
      assert.ok(error instanceof DockerConfigError, name);
      assert.equal(error.name, "DockerConfigError");
      assert.equal(error.source, "/path/config.json");
      assert.ok(error.message.startsWith("/path/config.json "), `${name}: ${error.message}`);
      assert.match(error.message, problem, name);
      assert.ok(
        error.message.endsWith(
          `; pass a file like {"auths":{"registry.example.com":{"auth":"<base64 user:password>"}}}.`,
        ),
        `${name}: ${error.message}`,
      );
      assert.ok(!error.message.includes(SECRET), `${name} leaks the secret: ${error.message}`);
      assert.ok(!error.message.includes(b64(SECRET)), `${name} leaks the auth: ${error.message}`);
      return true;
    });
  }
});

Deno.test("DockerConfig toString, toJSON and inspection never show secrets", () => {
  const config = parseDockerConfig(
    JSON.stringify({
      auths: {
        "quay.io": { auth: b64(`alice:${SECRET}`) },
        "ghcr.io": { identitytoken: SECRET, registrytoken: SECRET },
      },
    }),
    "pull-secret",
  );
  const renderings = [
    String(config),
    JSON.stringify(config),
    Deno.inspect(config),
    inspect(config),
    `${config}`,
  ];
  for (const text of renderings) {
    assert.ok(!text.includes(SECRET) && !text.includes(b64(`alice:${SECRET}`)), text);
  }
  assert.equal(String(config), "docker config pull-secret (quay.io, ghcr.io)");
  assert.deepEqual(JSON.parse(JSON.stringify(config)), {
    source: "pull-secret",
    serverAddresses: ["quay.io", "ghcr.io"],
  });
});

Deno.test("describeCredential() names the user or token kind and registry, never the secret", () => {
  const cases: [RegistryCredential, string][] = [
    [
      { serverAddress: "registry.example.com", username: "alice", password: SECRET },
      `user "alice" for registry.example.com`,
    ],
    [{ serverAddress: "r", identityToken: SECRET }, "identity token for r"],
    [{ serverAddress: "r", registryToken: SECRET }, "registry token for r"],
    [{ serverAddress: "r" }, "empty credentials for r"],
  ];
  for (const [credential, expected] of cases) {
    assert.equal(describeCredential(credential), expected);
  }
});

/** Server addresses of the credentials chosen for `image` from a config with `keys` in order. */
function chosen(keys: string[], image: string): string[] {
  const config = new DockerConfig(
    "test",
    keys.map((serverAddress) => ({ serverAddress, username: "u", password: "p" })),
  );
  return credentialsFor(config, parseImageReference(image)).map((c) => c.serverAddress);
}

Deno.test("credentialsFor() matches keys like the kubelet's BasicDockerKeyring", () => {
  const cases: [string, string[], string, string[]][] = [
    ["exact host", ["registry.example.com"], "registry.example.com/app", ["registry.example.com"]],
    ["other host", ["registry.example.com"], "other.example.com/app", []],
    ["scheme and trailing slash", ["https://quay.io/"], "quay.io/a/b", ["https://quay.io/"]],
    ["http scheme", ["http://quay.io"], "quay.io/a/b", ["http://quay.io"]],
    ["/v2/ dropped", ["https://quay.io/v2/"], "quay.io/a/b", ["https://quay.io/v2/"]],
    ["/v1/ dropped before a path", ["quay.io/v1/org"], "quay.io/org/app", ["quay.io/v1/org"]],
    ["path prefix", ["quay.io/org"], "quay.io/org/app", ["quay.io/org"]],
    ["other path", ["quay.io/org"], "quay.io/other/app", []],
    ["path is a plain string prefix", ["quay.io/org"], "quay.io/organisation/app", ["quay.io/org"]],
    ["query ignored", ["quay.io/org?x=1"], "quay.io/org/app", ["quay.io/org?x=1"]],
    ["userinfo ignored", ["https://me@quay.io"], "quay.io/org/app", ["https://me@quay.io"]],
    ["wildcard label", ["*.example.com"], "a.example.com/app", ["*.example.com"]],
    ["wildcard needs a label", ["*.example.com"], "example.com/app", []],
    ["wildcard is one label", ["*.example.com"], "a.b.example.com/app", []],
    ["two wildcards", ["*.*.example.com"], "a.b.example.com/app", ["*.*.example.com"]],
    ["wildcard in the middle", ["prefix.*.io"], "prefix.kubernetes.io/app", ["prefix.*.io"]],
    ["partial wildcard", ["*-good.example.com"], "eu-good.example.com/x", ["*-good.example.com"]],
    ["partial wildcard mismatch", ["*-good.example.com"], "eu-bad.example.com/x", []],
    // As with Go's url.Parse, "?" starts a query, so the host is "quay.i".
    ["question mark starts a query", ["quay.i?"], "quay.io/a/b", []],
    ["character class", ["[pq]uay.io"], "quay.io/a/b", ["[pq]uay.io"]],
    ["negated class", ["[^q]uay.io"], "quay.io/a/b", []],
    ["malformed glob never matches", ["[quay.io", "quay.io\\"], "quay.io/a/b", []],
    ["glob is case-sensitive", ["QUAY.io"], "quay.io/a/b", []],
    ["same port", ["localhost:5000"], "localhost:5000/a/b", ["localhost:5000"]],
    ["key port, image without", ["registry.io:5000"], "registry.io/a", []],
    ["image port, key without", ["registry.io"], "registry.io:5000/a", []],
    ["different port", ["registry.io:5000"], "registry.io:5001/a", []],
    ["IPv6 with port", ["https://[::1]:5000/v2/"], "[::1]:5000/a", ["https://[::1]:5000/v2/"]],
    ["wildcard with port", ["*.example.com:443"], "r.example.com:443/a", ["*.example.com:443"]],
  ];
  for (const [name, keys, image, expected] of cases) {
    assert.deepEqual(chosen(keys, image), expected, name);
  }
});

Deno.test("credentialsFor() returns every match, most specific key first", () => {
  const keys = ["*.io", "quay.io", "quay.io/coreos", "other.io", "quay.io/coreos/etcd"];
  assert.deepEqual(chosen(keys, "quay.io/coreos/etcd:v3"), [
    "quay.io/coreos/etcd",
    "quay.io/coreos",
    "quay.io",
    "*.io",
  ]);
});

Deno.test("credentialsFor() keeps config order for addresses that reduce to the same key", () => {
  assert.deepEqual(chosen(["https://quay.io/v1/", "quay.io", "http://quay.io/"], "quay.io/a"), [
    "https://quay.io/v1/",
    "quay.io",
    "http://quay.io/",
  ]);
});

Deno.test("credentialsFor() treats docker.io and index.docker.io keys alike for Docker Hub images", () => {
  const cases: [string, string[], string, string[]][] = [
    ["docker.io for an official image", ["docker.io"], "debian", ["docker.io"]],
    ["index.docker.io for an official image", ["index.docker.io"], "debian", ["index.docker.io"]],
    ["legacy v1 address", ["https://index.docker.io/v1/"], "user/app:1", [
      "https://index.docker.io/v1/",
    ]],
    ["both, in config order", ["index.docker.io", "docker.io"], "debian", [
      "index.docker.io",
      "docker.io",
    ]],
    ["path on docker.io", ["docker.io/library"], "debian", ["docker.io/library"]],
    ["path on index.docker.io", ["index.docker.io/user"], "user/app", ["index.docker.io/user"]],
    ["path mismatch", ["docker.io/user"], "debian", []],
    ["more specific first", ["https://index.docker.io/v1/", "docker.io/user"], "user/app", [
      "docker.io/user",
      "https://index.docker.io/v1/",
    ]],
    ["hub keys do not match other registries", ["docker.io", "index.docker.io"], "quay.io/a", []],
    ["wildcards do not reach Docker Hub", ["*.docker.io", "*.io"], "debian", ["*.io"]],
    ["registry-1 is a different host", ["registry-1.docker.io"], "debian", []],
  ];
  for (const [name, keys, image, expected] of cases) {
    assert.deepEqual(chosen(keys, image), expected, name);
  }
});

Deno.test("credentialsFor() returns nothing for an anonymous pull", () => {
  assert.deepEqual(chosen([], "debian"), []);
  assert.deepEqual(chosen(["quay.io"], "ghcr.io/a/b"), []);
});

Deno.test("credentialsFor() returns the parsed credentials themselves", () => {
  const config = parseDockerConfig(
    JSON.stringify({ auths: { "ghcr.io": { auth: b64(`bot:${SECRET}`) } } }),
    "f",
  );
  assert.deepEqual(credentialsFor(config, parseImageReference("ghcr.io/org/app:1")), [
    { serverAddress: "ghcr.io", username: "bot", password: SECRET, auth: b64(`bot:${SECRET}`) },
  ]);
});
