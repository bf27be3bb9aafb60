import assert from "node:assert/strict";
import {
  isDns1035Label,
  isDns1123Label,
  isDns1123Subdomain,
  isLabelKey,
  isLabelValue,
} from "./k8s_names.ts";

Deno.test("names follow the API server's rules", () => {
  for (const ok of ["a", "my-images", "a1", "x".repeat(63)]) assert.ok(isDns1035Label(ok), ok);
  for (const bad of ["", "1a", "-a", "a-", "A", "a_b", "a.b", "x".repeat(64)]) {
    assert.ok(!isDns1035Label(bad), bad);
  }
  assert.ok(isDns1123Label("1a") && !isDns1123Label("a.b"));
  assert.ok(isDns1123Subdomain("a.b-c.d") && !isDns1123Subdomain("a..b"));
  assert.ok(!isDns1123Subdomain("a".repeat(254)));
});

Deno.test("label keys and values follow the API server's rules", () => {
  for (const ok of ["app", "kubernetes.io/os", "node-role.kubernetes.io/worker", "A_b.c-D"]) {
    assert.ok(isLabelKey(ok), ok);
  }
  for (const bad of ["", "/os", "Kubernetes.io/os", "a/b/c", "-a", "a b", "x".repeat(64)]) {
    assert.ok(!isLabelKey(bad), bad);
  }
  for (const ok of ["", "linux", "v1.2_3-x"]) assert.ok(isLabelValue(ok), ok);
  for (const bad of ["-x", "x-", "a b", "a/b", "x".repeat(64)]) assert.ok(!isLabelValue(bad), bad);
});
