/**
 * The metrics server as a {@linkcode PullReporter} of a `fetch` run: each pull event becomes a
 * result ({@linkcode metricsReporter}) that the {@linkcode MetricsSubmitter} streams to the server.
 *
 * @module
 */
import type { Logger } from "../../core/log.ts";
import { readTokenFile } from "../../core/token_file.ts";
import type { OpenPullReporter, PullReporter } from "../../pull/reporter.ts";
import { metricsReporter } from "./events.ts";
import { MetricsSubmitter } from "./submitter.ts";

/** Options for {@linkcode openMetricsReporter}. */
export interface MetricsReporterConnection {
  /** The server's `host:port`. */
  endpoint: string;
  /** File holding the bearer token the server requires, if any. */
  tokenFile?: string;
  /** The node, sent on every result. */
  node: string;
  /** Where delivery problems are logged. */
  logger: Logger;
}

/**
 * Returns the opener that `runFetch` calls once it knows how many images the run has. The token
 * file is read then; an unreadable one ends the run with exit status 2.
 *
 * @example
 * ```ts
 * import { Logger } from "../../core/log.ts";
 * import { openMetricsReporter } from "./reporter.ts";
 *
 * const open = openMetricsReporter({
 *   endpoint: "metrics.example:8443",
 *   node: "node-1",
 *   logger: new Logger(),
 * });
 * // runFetch(config, { ...context, openReporter: open });
 * ```
 */
export function openMetricsReporter(connection: MetricsReporterConnection): OpenPullReporter {
  return async ({ imagesTotal }): Promise<PullReporter> => {
    const token = connection.tokenFile
      ? await readTokenFile(connection.tokenFile, "--metrics-token-file")
      : undefined;
    const submitter = new MetricsSubmitter({
      endpoint: connection.endpoint,
      token,
      logger: connection.logger,
      // fetch exits right after; see MetricsSubmitterOptions.gracefulClose.
      gracefulClose: false,
    });
    const report = metricsReporter({
      node: connection.node,
      imagesTotal,
      submit: (result) => submitter.submit(result),
    });
    return {
      endpoint: connection.endpoint,
      report,
      flush: (timeoutMs) => submitter.flush(timeoutMs),
    };
  };
}
