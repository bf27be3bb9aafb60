/**
 * `image-prefetcher sleep`: the DaemonSet's main container. Sleeps until SIGTERM or SIGINT,
 * then exits 0. Imports nothing, so it costs only the runtime itself.
 *
 * @module
 */

/** The help text of `sleep`. */
export const SLEEP_HELP = [
  "Usage: image-prefetcher sleep",
  "",
  "Sleeps until SIGTERM or SIGINT, then exits 0. Meant as the main container of the DaemonSet,",
  "after the fetch init container has pulled the images.",
].join("\n");

/** Sleeps until a termination signal arrives, then exits 0. */
export function main(args: string[]): Promise<never> {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(SLEEP_HELP);
    Deno.exit(0);
  }
  if (args.length > 0) {
    console.error(
      `image-prefetcher sleep: takes no arguments, got "${
        args.join(" ")
      }"; run it as "image-prefetcher sleep".`,
    );
    Deno.exit(2);
  }
  return new Promise<never>(() => {
    for (const signal of ["SIGTERM", "SIGINT"] as const) {
      Deno.addSignalListener(signal, () => Deno.exit(0));
    }
  });
}
