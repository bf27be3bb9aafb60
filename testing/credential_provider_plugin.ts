#!/usr/bin/env -S deno run --allow-read --allow-write --allow-env
/**
 * A kubelet credential provider plugin for tests: reads a `CredentialProviderRequest` on standard
 * input, appends one JSON line per call to `$PLUGIN_CALLS_FILE` (the request, its arguments), and
 * answers as its environment says:
 *
 * - `PLUGIN_MODE`: `ok` (default) answers; `fail` prints to standard error and exits 1; `hang`
 *   never answers; `garbage` prints text that is not a response (with `PLUGIN_GARBAGE` in it).
 * - `PLUGIN_API_VERSION` (default the request's), `PLUGIN_CACHE_KEY_TYPE` (default `Registry`),
 *   `PLUGIN_CACHE_DURATION` (left out when unset), `PLUGIN_AUTH` (JSON of the `auth` map).
 * - `PLUGIN_AUTH_SEQUENCE`: instead of `PLUGIN_AUTH`, JSON of a list of `auth` maps: the n-th
 *   call (counted in `$PLUGIN_CALLS_FILE`) answers the n-th, and the last one from then on.
 *
 * Tests start it through a small shell script (see `testing/credential_providers.ts`) that runs it
 * with the Deno running the tests, so it needs no `deno` on PATH.
 *
 * @module
 */

const env = (name: string) => Deno.env.get(name);
const request = JSON.parse(await new Response(Deno.stdin.readable).text());
const callsFile = env("PLUGIN_CALLS_FILE");
let callIndex = 0;
if (callsFile) {
  const earlier = await Deno.readTextFile(callsFile).catch(() => "");
  callIndex = earlier.split("\n").filter((line) => line !== "").length;
  const line = JSON.stringify({ request, args: Deno.args, at: Date.now() }) + "\n";
  await Deno.writeTextFile(callsFile, line, { append: true });
}

/** The `auth` map of this call. */
function authOfThisCall(): unknown {
  const sequence = env("PLUGIN_AUTH_SEQUENCE");
  if (sequence === undefined) return JSON.parse(env("PLUGIN_AUTH") ?? "{}");
  const answers = JSON.parse(sequence) as unknown[];
  return answers[Math.min(callIndex, answers.length - 1)];
}

switch (env("PLUGIN_MODE") ?? "ok") {
  case "fail":
    console.error(`no credentials for ${request.image}: metadata server said 503`);
    Deno.exit(1);
    break;
  case "hang":
    await new Promise(() => setInterval(() => {}, 1_000));
    break;
  case "garbage":
    console.log(`Welcome! token=${env("PLUGIN_GARBAGE") ?? "?"} -- not a response`);
    break;
  default: {
    const response: Record<string, unknown> = {
      apiVersion: env("PLUGIN_API_VERSION") ?? request.apiVersion,
      kind: "CredentialProviderResponse",
      cacheKeyType: env("PLUGIN_CACHE_KEY_TYPE") ?? "Registry",
      auth: authOfThisCall(),
    };
    const duration = env("PLUGIN_CACHE_DURATION");
    if (duration !== undefined) response.cacheDuration = duration;
    console.log(JSON.stringify(response));
  }
}
