/**
 * The metrics server as a {@linkcode PullReporter} of a `fetch` run: each pull event becomes a
 * result ({@linkcode metricsReporter}) that the {@linkcode MetricsSubmitter} streams to the server.
 *
 * @module
 */
import type { Logger } from "../../core/log.ts";
import type { TokenSource } from "../../core/token_file.ts";
import type { OpenPullReporter, PullReporter } from "../../pull/reporter.ts";
import { metricsReporter } from "./events.ts";
import { MetricsSubmitter } from "./submitter.ts";

/** Options for {@linkcode openMetricsReporter}. */
export interface MetricsReporterConnection {
  /** The server's `host:port`. */
  endpoint: string;
  /** The bearer token the server requires, if any. */
  token?: TokenSource;
  /** The node, sent on every result. */
  node: string;
  /** Where delivery problems are logged. */
  logger: Logger;
}

/**
 * Returns the opener that `runFetch` calls once it knows how many images the run has.
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
  return ({ imagesTotal }): PullReporter => {
    const submitter = new MetricsSubmitter({
      endpoint: connection.endpoint,
      token: connection.token,
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
      flush: (timeoutMs, signal) => submitter.flush(timeoutMs, signal),
    };
  };
}
