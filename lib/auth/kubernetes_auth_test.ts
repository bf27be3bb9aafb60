import assert from "node:assert/strict";
import type { NodeCaller, Refusal } from "../core/bearer_token.ts";
import { Logger } from "../core/log.ts";
import { kubernetesAuth } from "./kubernetes_auth.ts";
import type { ReviewApi } from "./token_review.ts";

const ACCOUNT = { namespace: "pf", name: "my-images" };
const USER = "system:serviceaccount:pf:my-images";

/** A fake API answering TokenReviews from a table, or failing while `down`. */
function fakeApi(users: Record<string, { node?: string; username?: string }>) {
  const api = {
    down: false,
    reviews: 0,
    createReview<T>(_kind: string, spec: unknown) {
      api.reviews++;
      if (api.down) return Promise.reject(new Error("connection refused"));
      const user = users[(spec as { token: string }).token];
      const status = user
        ? {
          authenticated: true,
          audiences: ["aud"],
          user: {
            username: user.username ?? USER,
            extra: user.node ? { "authentication.kubernetes.io/node-name": [user.node] } : {},
          },
        }
        : { authenticated: false, error: "invalid bearer token" };
      return Promise.resolve({ status: status as T });
    },
    getPod: () => Promise.reject(new Error("no pods here")),
  };
  return api;
}

function setup(users: Record<string, { node?: string; username?: string }>) {
  const api = fakeApi(users);
  const lines: string[] = [];
  let now = 1_000_000;
  const auth = kubernetesAuth({
    api: api as ReviewApi,
    audience: "aud",
    serviceAccount: ACCOUNT,
    logger: new Logger({ format: "json", write: (line) => lines.push(line) }),
    clock: { now: () => now, wallNow: () => now, sleep: () => Promise.resolve() },
  });
  return { api, auth, lines, advance: (ms: number) => now += ms };
}

Deno.test("a node's token names its node; another node's name is refused, logged once a pair", async () => {
  const { auth, lines } = setup({ "t-a": { node: "node-a" } });
  const caller = await auth.node("Bearer t-a") as NodeCaller;
  assert.equal(caller.nodeFor("node-a"), "node-a");
  assert.equal(caller.nodeFor(""), "node-a");
  for (let i = 0; i < 3; i++) {
    const refused = caller.nodeFor("node-b") as Refusal;
    assert.equal(refused.refused, "forbidden");
    assert.match(refused.message, /speaks for node "node-a", not "node-b"/);
  }
  assert.equal(lines.filter((l) => l.includes("speaking for another node")).length, 1);
});

Deno.test("answers are kept for their time; a refusal briefly; an API failure not at all", async () => {
  const { api, auth, advance } = setup({ "t-a": { node: "node-a" } });
  await auth.node("Bearer t-a");
  await auth.node("Bearer t-a");
  assert.equal(api.reviews, 1);
  advance(60_000);
  await auth.node("Bearer t-a");
  assert.equal(api.reviews, 2, "asked again after a minute");

  assert.equal((await auth.node("Bearer forged") as Refusal).refused, "unauthenticated");
  await auth.node("Bearer forged");
  assert.equal(api.reviews, 3, "a refusal is kept");
  advance(10_000);
  await auth.node("Bearer forged");
  assert.equal(api.reviews, 4, "for 10 s");

  api.down = true;
  const down = await auth.node("Bearer t-new") as Refusal;
  assert.equal(down.refused, "unavailable");
  assert.match(down.message, /connection refused.*try again/);
  api.down = false;
  await auth.node("Bearer t-new");
  assert.equal(api.reviews, 6, "the failure was not kept");
});

Deno.test("no token, another account's token, a token naming no pod: each refused with why", async () => {
  const { auth } = setup({
    "t-other": { node: "node-a", username: "system:serviceaccount:pf:other" },
    "t-nopod": {},
  });
  assert.match((await auth.node(undefined) as Refusal).message, /send Authorization: Bearer/);
  assert.match((await auth.node("Basic abc") as Refusal).message, /send Authorization: Bearer/);
  const other = await auth.node("Bearer t-other") as Refusal;
  assert.deepEqual(other.refused, "forbidden");
  assert.match(other.message, /system:serviceaccount:pf:other does not speak for nodes/);
  const noPod = await auth.node("Bearer t-nopod") as Refusal;
  assert.equal(noPod.refused, "forbidden");
  assert.match(noPod.message, /bound to no pod/);
});
