/**
 * A node's credential provider set-up for tests: a plugin directory with copies of the test
 * plugin (`testing/credential_provider_plugin.ts`) under the names a config gives them, the
 * `CredentialProviderConfig` naming them, and each plugin's log of calls.
 *
 * @example
 * ```ts
 * import { writeProviderSetup } from "./credential_providers.ts";
 *
 * async function example() {
 *   await using setup = await writeProviderSetup([
 *     { name: "test-plugin", matchImages: ["127.0.0.1:5000"], plugin: { auth: {} } },
 *   ]);
 *   // fetch --image-credential-provider-config setup.configPath ... then:
 *   return (await setup.calls("test-plugin")).length;
 * }
 * ```
 *
 * @module
 */
import { stringify } from "yaml";

const PLUGIN = new URL("./credential_provider_plugin.ts", import.meta.url).pathname;

/** How the test plugin answers (see `testing/credential_provider_plugin.ts`). */
export interface TestPluginBehaviour {
  /** @default {"ok"} */
  mode?: "ok" | "fail" | "hang" | "garbage";
  /** @default {"Registry"} */
  cacheKeyType?: string;
  /** Left out of the response when undefined. */
  cacheDuration?: string;
  /** The response's `auth` map. */
  auth?: Record<string, { username: string; password: string }>;
  /** Instead of `auth`: the n-th call answers the n-th map, the last one from then on. */
  authSequence?: Array<Record<string, { username: string; password: string }>>;
  /** The response's apiVersion. @default {the request's} */
  apiVersion?: string;
  /** Text printed in `garbage` mode. */
  garbage?: string;
}

/** One provider of the config, run by the test plugin. */
export interface TestProvider {
  /** The plugin's file name. */
  name: string;
  /** The provider's `matchImages`. */
  matchImages: string[];
  /** @default {"0s"} */
  defaultCacheDuration?: string;
  /** @default {"credentialprovider.kubelet.k8s.io/v1"} */
  apiVersion?: string;
  /** The provider's `args`. */
  args?: string[];
  /** How the plugin answers; passed through the provider's `env`. */
  plugin: TestPluginBehaviour;
}

/** One recorded plugin call. */
export interface PluginCall {
  /** The `CredentialProviderRequest` it read. */
  request: { apiVersion: string; kind: string; image: string };
  /** Its command-line arguments. */
  args: string[];
}

/** A written set-up; removed on `await using` disposal. */
export interface ProviderSetup extends AsyncDisposable {
  /** The `CredentialProviderConfig` file (YAML). */
  configPath: string;
  /** The plugin directory. */
  binDir: string;
  /** The calls plugin `name` received so far. */
  calls(name: string): Promise<PluginCall[]>;
}

/** Writes the config and one executable per provider into a new temporary directory. */
export async function writeProviderSetup(providers: TestProvider[]): Promise<ProviderSetup> {
  const dir = await Deno.makeTempDir({ prefix: "ipf-credential-providers-" });
  const binDir = `${dir}/bin`;
  await Deno.mkdir(binDir);
  const callsFile = (name: string) => `${dir}/${name}.calls.jsonl`;
  for (const provider of providers) {
    const path = `${binDir}/${provider.name}`;
    await Deno.writeTextFile(
      path,
      `#!/bin/sh\nexec '${Deno.execPath()}' run --quiet --no-config --allow-read --allow-write ` +
        `--allow-env '${PLUGIN}' "$@"\n`,
    );
    await Deno.chmod(path, 0o755);
  }
  const config = {
    apiVersion: "kubelet.config.k8s.io/v1",
    kind: "CredentialProviderConfig",
    providers: providers.map((p) => ({
      name: p.name,
      matchImages: p.matchImages,
      defaultCacheDuration: p.defaultCacheDuration ?? "0s",
      apiVersion: p.apiVersion ?? "credentialprovider.kubelet.k8s.io/v1",
      ...(p.args ? { args: p.args } : {}),
      env: pluginEnv(p.plugin, callsFile(p.name)),
    })),
  };
  const configPath = `${dir}/credential-provider-config.yaml`;
  await Deno.writeTextFile(configPath, stringify(config));
  return {
    configPath,
    binDir,
    calls: async (name) => {
      const text = await Deno.readTextFile(callsFile(name)).catch(() => "");
      return text.split("\n").filter((line) => line !== "").map((line) => JSON.parse(line));
    },
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

function pluginEnv(
  behaviour: TestPluginBehaviour,
  callsFile: string,
): Array<{ name: string; value: string }> {
  const values: Record<string, string | undefined> = {
    PLUGIN_CALLS_FILE: callsFile,
    PLUGIN_MODE: behaviour.mode,
    PLUGIN_CACHE_KEY_TYPE: behaviour.cacheKeyType,
    PLUGIN_CACHE_DURATION: behaviour.cacheDuration,
    PLUGIN_AUTH: behaviour.auth ? JSON.stringify(behaviour.auth) : undefined,
    PLUGIN_AUTH_SEQUENCE: behaviour.authSequence
      ? JSON.stringify(behaviour.authSequence)
      : undefined,
    PLUGIN_API_VERSION: behaviour.apiVersion,
    PLUGIN_GARBAGE: behaviour.garbage,
  };
  return Object.entries(values).flatMap(([name, value]) =>
    value === undefined ? [] : [{ name, value }]
  );
}
