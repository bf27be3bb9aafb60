/**
 * Kubelet credential provider plugins in a `fetch` run: reads the config, checks the plugins are
 * there, and has each image look up its plugin credentials when it is pulled, to be tried after
 * its docker-config credentials: the order the kubelet tries them in (pull secrets first, then
 * the node's providers).
 *
 * @module
 */
import { InvalidInputError } from "../core/exit_codes.ts";
import type { Clock } from "../core/clock.ts";
import type { Logger } from "../core/log.ts";
import { describeCredential } from "../image/docker_config.ts";
import type { ImageReference } from "../image/reference.ts";
import { parseProviderConfig, ProviderConfigError } from "../credentials/provider_config.ts";
import { ProviderKeyring } from "../credentials/provider_keyring.ts";
import type { PullTarget } from "./scheduler.ts";

/** Where the plugins are and how long a call may take (from `fetch`'s flags). */
export interface PluginSettings {
  /** Path of the `CredentialProviderConfig` (`--image-credential-provider-config`). */
  configPath: string;
  /** Directory of the plugin executables (`--image-credential-provider-bin-dir`). */
  binDir: string;
  /** Bound on each plugin call, in milliseconds. */
  timeoutMs: number;
}

/** The loaded plugins. */
export interface PluginCredentials {
  /** The plugins, with their answers cached for the run. */
  keyring: ProviderKeyring;
}

/**
 * Reads and checks the config and that each plugin is an executable file in the directory.
 *
 * @throws {InvalidInputError} Naming the file or plugin and the fix.
 */
export async function loadPluginCredentials(
  settings: PluginSettings,
  logger: Logger,
  clock: Clock,
): Promise<PluginCredentials> {
  let text: string;
  try {
    text = await Deno.readTextFile(settings.configPath);
  } catch (error) {
    throw new InvalidInputError(
      `Cannot read the credential provider config ${settings.configPath} ` +
        `(${(error as Error).message}); point --image-credential-provider-config at the node's ` +
        "kubelet CredentialProviderConfig file.",
    );
  }
  let providers;
  try {
    providers = parseProviderConfig(text, settings.configPath);
  } catch (error) {
    if (error instanceof ProviderConfigError) throw new InvalidInputError(error.message);
    throw error;
  }
  for (const provider of providers) await checkExecutable(settings.binDir, provider.name);
  const keyring = new ProviderKeyring(providers, {
    binDir: settings.binDir,
    timeoutMs: settings.timeoutMs,
    clock,
    onCall: (plugin, image) => {
      logger.debug("running credential provider plugin", { plugin, image });
    },
    onFailure: (failure) => {
      logger.warn("credential provider plugin gave no credentials; pulling with the others", {
        plugin: failure.provider,
        image: failure.image,
        error: failure.error,
      });
    },
  });
  logger.info("credential provider plugins loaded", {
    config: settings.configPath,
    bin_dir: settings.binDir,
    plugins: providers.map((p) => p.name).join(","),
  });
  return { keyring };
}

/**
 * Has each target look up its plugin credentials before each pull attempt, after the ones it
 * already has (from the docker config). An image that is already on the node runs no plugin.
 * A lookup with `renew` (after the registry refused the credentials) asks the plugins again
 * unless their answer was renewed since this target's previous lookup.
 */
export function addPluginCredentials(
  targets: PullTarget[],
  references: ImageReference[],
  plugins: PluginCredentials,
  logger: Logger,
): void {
  targets.forEach((target, index) => {
    let lookedUpAt: number | undefined;
    target.lookupCredentials = async (signal, options = {}) => {
      const renewStoredBy = options.renew ? lookedUpAt : undefined;
      const credentials = await plugins.keyring.credentialsFor(references[index], signal, {
        renewStoredBy,
      });
      // After the answer: what this lookup got was stored by now; a renewal is stored later.
      lookedUpAt = plugins.keyring.now();
      for (const credential of credentials) {
        logger.debug("credential matches", {
          image: target.image,
          credential: `${describeCredential(credential)} (credential provider)`,
        });
      }
      // No serverAddress, as the kubelet sends none: the key is a glob, not an address, and
      // containerd drops (or fails on) credentials whose serverAddress is not the image's host.
      return credentials.map((c) => ({ username: c.username, password: c.password }));
    };
  });
}

async function checkExecutable(binDir: string, name: string): Promise<void> {
  const path = `${binDir.replace(/\/+$/, "")}/${name}`;
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (error) {
    throw new InvalidInputError(
      `The credential provider plugin ${name} is not at ${path} (${(error as Error).message}); ` +
        "point --image-credential-provider-bin-dir at the node's plugin directory, or remove " +
        "the provider from the config.",
    );
  }
  if (!info.isFile || info.mode === null || (info.mode & 0o111) === 0) {
    throw new InvalidInputError(
      `The credential provider plugin ${path} is not an executable file; chmod +x it.`,
    );
  }
}
