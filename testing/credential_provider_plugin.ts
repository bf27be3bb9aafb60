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
 *
 * Tests start it through a small shell script (see `testing/credential_providers.ts`) that runs it
 * with the Deno running the tests, so it needs no `deno` on PATH.
 *
 * @module
 */

const env = (name: string) => Deno.env.get(name);
const request = JSON.parse(await new Response(Deno.stdin.readable).text());
const callsFile = env("PLUGIN_CALLS_FILE");
if (callsFile) {
  const line = JSON.stringify({ request, args: Deno.args, at: Date.now() }) + "\n";
  await Deno.writeTextFile(callsFile, line, { append: true });
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
      auth: JSON.parse(env("PLUGIN_AUTH") ?? "{}"),
    };
    const duration = env("PLUGIN_CACHE_DURATION");
    if (duration !== undefined) response.cacheDuration = duration;
    console.log(JSON.stringify(response));
  }
}
