/**
 * `image-prefetcher`: gets OCI images onto Kubernetes nodes fast and reliably.
 *
 * Each subcommand's module is imported only when that subcommand runs, so `sleep` loads nothing
 * of the others.
 *
 * @module
 */
import denoConfig from "./deno.json" with { type: "json" };
import { dropRunPermission } from "./lib/core/run_permission.ts";

/** The program's version, from `deno.json`. */
export const VERSION: string = denoConfig.version;

const USAGE =
  `image-prefetcher ${VERSION}: gets OCI images onto Kubernetes nodes, fast and reliably.

Usage: image-prefetcher <command> [flags]

Commands:
  fetch              pull every image of a list onto this node through its CRI socket
  sleep              sleep until terminated (the DaemonSet's main container)
  keep               keep the list's images on this node: follow edits, refresh tags, release pins
  aggregate-metrics  collect pull attempts from every node and serve them over HTTP

Run "image-prefetcher <command> --help" for a command's flags; "--version" prints the version.`;

/** The subcommands that speak gRPC run with denoland/deno#36788 mitigated, before any traffic. */
async function installGrpcMitigations(): Promise<void> {
  (await import("./lib/core/http2_goaway_mitigation.ts")).installHttp2GoawayMitigation();
}

if (import.meta.main) {
  const [command, ...args] = Deno.args;
  // fetch (and keep's cycles) keep the right to start programs only when they have credential
  // provider plugins to run; keep itself starts its cycles.
  if (command !== "fetch" && command !== "keep" && command !== "keep-cycle") dropRunPermission();
  switch (command) {
    case "fetch":
      await installGrpcMitigations();
      await (await import("./cmd/fetch.ts")).main(args);
      break;
    case "keep":
      await (await import("./cmd/keep.ts")).main(args);
      break;
    case "keep-cycle":
      await installGrpcMitigations();
      await (await import("./cmd/keep_cycle.ts")).main(args);
      break;
    case "sleep":
      await (await import("./cmd/sleep.ts")).main(args);
      break;
    case "aggregate-metrics":
      await installGrpcMitigations();
      await (await import("./cmd/aggregate_metrics.ts")).main(args);
      break;
    case "--version":
    case "version":
      console.log(VERSION);
      break;
    case undefined:
    case "--help":
    case "-h":
    case "help":
      console.log(USAGE);
      break;
    default:
      console.error(
        `image-prefetcher: unknown command "${command}"; use fetch, keep, sleep or ` +
          `aggregate-metrics ` +
          `(run "image-prefetcher --help").`,
      );
      Deno.exit(2);
  }
}
