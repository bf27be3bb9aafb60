import assert from "node:assert/strict";
import { imageMatches, registryOf } from "./match_images.ts";

Deno.test("imageMatches() follows the kubelet's matchImages rules", () => {
  const cases: Array<[string, string, boolean]> = [
    ["*.dkr.ecr.*.amazonaws.com", "123.dkr.ecr.eu-west-1.amazonaws.com/team/app", true],
    ["*.dkr.ecr.*.amazonaws.com", "123.dkr.ecr.eu-west-1.amazonaws.com.cn/app", false],
    ["*.gcr.io", "eu.gcr.io/project/app", true],
    ["*.gcr.io", "gcr.io/project/app", false], // labels must be as many
    ["*.gcr.io", "a.b.gcr.io/app", false],
    ["gcr.io", "gcr.io/project/app", true],
    ["*-docker.pkg.dev", "europe-docker.pkg.dev/p/r/app", true],
    ["registry.example.com:5000", "registry.example.com:5000/app", true],
    ["registry.example.com:5000", "registry.example.com/app", false], // ports must be equal
    ["registry.example.com", "registry.example.com:5000/app", false],
    ["registry.example.com/team", "registry.example.com/team/app", true], // path prefix
    ["registry.example.com/team", "registry.example.com/other/app", false],
    ["*.azurecr.io", "myregistry.azurecr.io/app", true],
    ["[a-c]cr.io", "bcr.io/app", true],
    ["[a-c]cr.io", "dcr.io/app", false],
    ["*", "localhost/app", true],
    ["*", "docker.io/library/debian", false],
    ["*.*", "docker.io/library/debian", true],
  ];
  for (const [glob, image, expected] of cases) {
    assert.equal(imageMatches(glob, image), expected, `${glob} vs ${image}`);
  }
});

Deno.test("registryOf() is the text before the first slash, port included", () => {
  assert.equal(registryOf("registry.example.com:5000/team/app"), "registry.example.com:5000");
  assert.equal(registryOf("gcr.io/p/app"), "gcr.io");
});
