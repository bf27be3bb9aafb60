/**
 * Opens a node's side of cluster-wide waves for one `fetch` run: the gRPC client, the gate over
 * it, and a log line for everything the gate reports (an image waits and why, the coordinator
 * is unreachable and the node pulls on its own, it is back, it refuses).
 *
 * @module
 */
import type { Clock } from "../../core/clock.ts";
import { formatDuration } from "../../core/duration.ts";
import type { Logger } from "../../core/log.ts";
import type { TokenSource } from "../../core/token_file.ts";
import type { OpenedPullGate } from "../../pull/gate.ts";
import { WavesClient } from "./waves_client.ts";
import { type GateEvent, WavesGate } from "./waves_gate.ts";

/** Options for {@linkcode openNodeWaves}. */
export interface NodeWavesOptions {
  /** `host:port` of the coordinator (the metrics server). */
  endpoint: string;
  /** The bearer token it requires, if any. */
  token?: TokenSource;
  /** This node's name. */
  node: string;
  /** The longest an image waits while the coordinator does not answer. */
  maxWaitMs: number;
  /** The runtime's progress cannot be watched: renew every admitted image's lease. */
  renewWithoutProgress: boolean;
  /** Where the gate's events are logged. */
  logger: Logger;
  /** Time and waits. */
  clock?: Clock;
}

/** The gate for the pull scheduler, closed (without a GOAWAY) when disposed. */
export interface NodeWaves extends OpenedPullGate {
  /** Give it to the pull scheduler. */
  gate: WavesGate;
}

/** Opens the client and the gate; nothing is sent until the scheduler asks. */
export function openNodeWaves(options: NodeWavesOptions): NodeWaves {
  // fetch exits right after the run: end the connection without a GOAWAY (denoland/deno#36788).
  const client = new WavesClient({
    endpoint: options.endpoint,
    token: options.token,
    gracefulClose: false,
  });
  const gate = new WavesGate({
    node: options.node,
    exchange: (request, signal) => client.admit(request, signal),
    maxWaitMs: options.maxWaitMs,
    renewWithoutProgress: options.renewWithoutProgress,
    clock: options.clock,
    onEvent: (event) => logGateEvent(options.logger, options.endpoint, event),
  });
  return {
    gate,
    flush: (timeoutMs, patienceMs) => gate.flush(timeoutMs, patienceMs),
    [Symbol.dispose]: () => {
      gate.close();
      client[Symbol.dispose]();
    },
  };
}

/** Logs one gate event as one line. */
export function logGateEvent(logger: Logger, endpoint: string, event: GateEvent): void {
  switch (event.type) {
    case "waiting":
      logger.info("image waits for its wave", { image: event.image, reason: event.reason });
      break;
    case "admitted":
      if (event.waitedMs > 0 || event.firstWave) {
        logger.info("image admitted", {
          image: event.image,
          wave: event.firstWave ? "first" : "fanout",
          waited: formatDuration(event.waitedMs),
        });
      }
      break;
    case "unreachable":
      logger.warn("the waves coordinator does not answer; pulling on our own", {
        endpoint,
        waited: formatDuration(event.waitedMs),
        released: event.released,
        error: event.error,
      });
      break;
    case "reachable":
      logger.info(event.restarted ? "the waves coordinator restarted" : "waves coordinator", {
        endpoint,
        server_id: event.serverId,
      });
      break;
    case "refused":
      logger.warn("pulling without waves", { endpoint, error: event.error });
      break;
  }
}
