import assert from "node:assert/strict";
import { parseImageReference } from "../image/reference.ts";
import type { CredentialProvider } from "./provider_config.ts";
import { type PluginFailure, ProviderKeyring, type RunPlugin } from "./provider_keyring.ts";
import type { ProviderResponse } from "./provider_response.ts";
import { PluginCallError } from "./exec_plugin.ts";

function provider(
  name: string,
  matchImages: string[],
  defaultCacheDurationMs = 0,
): CredentialProvider {
  return {
    name,
    matchImages,
    defaultCacheDurationMs,
    apiVersion: "credentialprovider.kubelet.k8s.io/v1",
    args: [],
    env: [],
  };
}

/** A fake plugin runner answering per provider name, recording calls. */
function runner(answers: Record<string, ProviderResponse | Error>) {
  const calls: string[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const run: RunPlugin = async (p, image) => {
    calls.push(`${p.name} ${image}`);
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    await new Promise((resolve) => setTimeout(resolve, 1));
    inFlight--;
    const answer = answers[p.name];
    if (answer instanceof Error) throw answer;
    return answer;
  };
  return { run, calls, maxInFlight: () => maxInFlight };
}

const clock = { now: () => 0, wallNow: () => 0, sleep: () => Promise.resolve() };
const image = (text: string) => parseImageReference(text);

Deno.test("ProviderKeyring runs a Registry-keyed plugin once for many images of a registry", async () => {
  const fake = runner({
    gcr: {
      cacheKeyType: "Registry",
      cacheDurationMs: 3_600_000,
      auth: [{ serverAddress: "gcr.io", username: "_token", password: "t" }],
    },
  });
  const keyring = new ProviderKeyring([provider("gcr", ["gcr.io"])], {
    binDir: "/none",
    clock,
    runPlugin: fake.run,
  });
  const results = await Promise.all(
    Array.from({ length: 100 }, (_, i) => keyring.credentialsFor(image(`gcr.io/p/app${i}:1`))),
  );
  assert.equal(fake.calls.length, 1);
  assert.equal(fake.maxInFlight(), 1);
  for (const credentials of results) {
    assert.deepEqual(credentials.map((c) => c.username), ["_token"]);
  }
});

Deno.test("ProviderKeyring merges providers in config order and matches auth keys like the kubelet", async () => {
  const fake = runner({
    first: {
      cacheKeyType: "Global",
      auth: [
        { serverAddress: "*.example.com", username: "first-wildcard" },
        { serverAddress: "eu.example.com", username: "first-host" },
      ],
    },
    second: {
      cacheKeyType: "Global",
      auth: [
        { serverAddress: "eu.example.com", username: "second-host" },
        { serverAddress: "eu.example.com/team", username: "second-path" },
        { serverAddress: "other.example.org", username: "unrelated" },
      ],
    },
    never: { cacheKeyType: "Global", auth: [] },
  });
  const keyring = new ProviderKeyring([
    provider("first", ["*.example.com"]),
    provider("second", ["eu.example.com"]),
    provider("never", ["*.example.org"]),
  ], { binDir: "/none", clock, runPlugin: fake.run });
  const credentials = await keyring.credentialsFor(image("eu.example.com/team/app:1"));
  // Most specific key first; for eu.example.com the earlier provider's entry wins.
  assert.deepEqual(credentials.map((c) => c.username), [
    "second-path",
    "first-host",
    "first-wildcard",
  ]);
  assert.deepEqual(fake.calls, ["first eu.example.com/team/app", "second eu.example.com/team/app"]);
});

Deno.test("ProviderKeyring reports a failed call and goes on; a hung plugin is not run again", async () => {
  const failures: PluginFailure[] = [];
  const fake = runner({
    broken: new PluginCallError("exited with 1"),
    hung: new PluginCallError("gave no answer within 1s and was killed", { timedOut: true }),
  });
  const keyring = new ProviderKeyring(
    [provider("broken", ["*.io"]), provider("hung", ["*.io"])],
    { binDir: "/none", clock, runPlugin: fake.run, onFailure: (f) => failures.push(f) },
  );
  assert.deepEqual(await keyring.credentialsFor(image("quay.io/a/b")), []);
  assert.deepEqual(await keyring.credentialsFor(image("quay.io/a/c")), []);
  assert.deepEqual(fake.calls, ["broken quay.io/a/b", "hung quay.io/a/b", "broken quay.io/a/c"]);
  assert.deepEqual(failures.map((f) => `${f.provider} ${f.image}`), [
    "broken quay.io/a/b",
    "hung quay.io/a/b",
    "broken quay.io/a/c",
    "hung quay.io/a/c",
  ]);
  assert.match(failures[3].error, /hung earlier in this run \(for quay.io\/a\/b\)/);
});

Deno.test("ProviderKeyring stops waiting when the run ends, without a warning", async () => {
  const failures: PluginFailure[] = [];
  const stop = new AbortController();
  const started: string[] = [];
  const keyring = new ProviderKeyring([provider("slow", ["*.io"])], {
    binDir: "/none",
    clock,
    onFailure: (f) => failures.push(f),
    runPlugin: (_p, image, signal) =>
      new Promise((_, reject) => {
        started.push(image);
        signal?.addEventListener("abort", () => reject(new PluginCallError("was stopped")));
      }),
  });
  const first = keyring.credentialsFor(image("quay.io/a/b"), stop.signal);
  const second = keyring.credentialsFor(image("quay.io/a/c"), stop.signal); // waits for the lock
  await new Promise((resolve) => setTimeout(resolve, 1));
  stop.abort();
  assert.deepEqual(await Promise.all([first, second]), [[], []]);
  assert.deepEqual(started, ["quay.io/a/b"]);
  assert.deepEqual(failures, []);
});

Deno.test("ProviderKeyring renews a refused answer once, however many images it refused", async () => {
  const fake = runner({
    gcr: {
      cacheKeyType: "Registry",
      cacheDurationMs: 3_600_000,
      auth: [{ serverAddress: "gcr.io", username: "_token", password: "t" }],
    },
  });
  let time = 1_000;
  const keyring = new ProviderKeyring([provider("gcr", ["gcr.io"])], {
    binDir: "/none",
    clock: { now: () => time, wallNow: () => 0, sleep: () => Promise.resolve() },
    runPlugin: fake.run,
  });
  await keyring.credentialsFor(image("gcr.io/p/a:1"));
  const lookedUpAt = keyring.now();
  time += 1;
  // Ten images were refused with the answer looked up before: the first renews it, the others
  // find the renewed answer, stored after their own lookup.
  await Promise.all(
    Array.from(
      { length: 10 },
      (_, i) =>
        keyring.credentialsFor(image(`gcr.io/p/app${i}:1`), undefined, {
          renewStoredBy: lookedUpAt,
        }),
    ),
  );
  assert.equal(fake.calls.length, 2);
  await keyring.credentialsFor(image("gcr.io/p/a:1"));
  assert.equal(fake.calls.length, 2, "the renewed answer is cached as usual");
});
