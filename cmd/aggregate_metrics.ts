/**
 * `image-prefetcher aggregate-metrics`: not built yet; says so clearly.
 *
 * @module
 */

/** Explains that this subcommand is not available in this version, and exits 2. */
export function main(_args: string[]): Promise<never> {
  console.error(
    "image-prefetcher aggregate-metrics: not available in this version yet; run fetch without " +
      "--metrics-endpoint (its logs and summary report every attempt).",
  );
  Deno.exit(2);
}
