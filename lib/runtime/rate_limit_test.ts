import assert from "node:assert/strict";
import { isRateLimited } from "./rate_limit.ts";

Deno.test("isRateLimited knows containerd's and CRI-O's words for a 429", () => {
  assert.equal(
    isRateLimited(
      'failed to pull and unpack image "r/a:1": failed to resolve reference "r/a:1": ' +
        "unexpected status from HEAD request to http://r/v2/a/manifests/1: 429 Too Many Requests",
    ),
    true,
  );
  assert.equal(
    isRateLimited("reading manifest 1 in r/a: toomanyrequests: You have reached your pull rate"),
    true,
  );
  assert.equal(isRateLimited("unexpected status: 503 Service Unavailable"), false);
  assert.equal(isRateLimited("received 4290 bytes"), false);
});
