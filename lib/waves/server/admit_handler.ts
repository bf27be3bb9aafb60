/**
 * Serves `/Waves/Admit` over a {@linkcode WaveCoordinator}: applies a node's news (landed,
 * failed, progressed, released, or its full report), then decides every image it wants.
 * Callers are authenticated by the server's {@linkcode ServerAuth}; a node asks only for itself.
 * A request past a bound (`../limits.ts`) is refused with INVALID_ARGUMENT or RESOURCE_EXHAUSTED,
 * nothing of it applied.
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "../../core/log.ts";
import {
  authorizationOf,
  grpcStatusOf,
  isRefusal,
  type NodeCaller,
  openAuth,
  type Refusal,
  type ServerAuth,
  sharedTokenAuth,
} from "../../core/bearer_token.ts";
import type { WaveCoordinator } from "../coordinator.ts";
import { checkRequestNames, WavesLimitError } from "../limits.ts";
import type { WavesSnapshot } from "../snapshot.ts";
import {
  WavesService,
  type WireAdmitRequest,
  type WireAdmitResponse,
  type WireDecision,
} from "../protocol.ts";

/** Options for {@linkcode wavesEndpoint}. */
export interface WavesEndpointOptions {
  /** Decides. */
  coordinator: WaveCoordinator;
  /** Where refusals and (with --debug) decisions are logged. */
  logger: Logger;
  /** When set (and `auth` is not), callers must present `Authorization: Bearer <token>`. */
  token?: string;
  /** Who may ask, and for which node. @default {the `token` check, or everyone} */
  auth?: ServerAuth;
}

/** What a gRPC server adds to serve waves, and the picture for the HTTP views. */
export interface WavesEndpoint {
  /** The service definition to add to a `grpc.Server`. */
  definition: grpc.ServiceDefinition;
  /** Its implementation. */
  implementation: grpc.UntypedServiceImplementation;
  /** This coordinator's identity, new at every start. */
  serverId: string;
  /** The coordinator's current picture. */
  snapshot(): WavesSnapshot;
}

/**
 * How long a node should wait before asking again: 1 s, and 1 s more per 2,000 nodes, so that
 * 5,000 polling nodes send about 1,700 requests a second; longer when every node asking for as
 * many images as this one (`wanted`) would ask for more than 100,000 decisions a second (a
 * third of what one server decides in `bench/waves_grpc.ts`: 5,000 nodes waiting for 200
 * images each ask again every 10 s), at most 10 s.
 */
export function retryAfterMs(nodes: number, wanted = 0): number {
  const byNodes = 1_000 * (1 + Math.floor(nodes / 2_000));
  const byDecisions = Math.round(nodes * wanted / DECISIONS_PER_SECOND * 1_000);
  return Math.min(10_000, Math.max(byNodes, byDecisions));
}

const DECISIONS_PER_SECOND = 100_000;

/** Builds the `Waves` service over a coordinator. */
export function wavesEndpoint(options: WavesEndpointOptions): WavesEndpoint {
  const { coordinator, logger } = options;
  const auth = options.auth ?? (options.token ? sharedTokenAuth(options.token) : openAuth());
  const serverId = crypto.randomUUID();
  let warned = false;
  const admit = (
    call: grpc.ServerUnaryCall<WireAdmitRequest, WireAdmitResponse>,
    callback: grpc.sendUnaryData<WireAdmitResponse>,
  ) => {
    auth.node(authorizationOf(call.metadata)).then(
      (caller) => decide(call, callback, caller),
    ).catch((error) => {
      logger.error("failed to answer an admission", { error: String(error) });
      callback({ code: grpc.status.INTERNAL, details: "the coordinator failed to answer" }, null);
    });
  };
  const decide = (
    call: grpc.ServerUnaryCall<WireAdmitRequest, WireAdmitResponse>,
    callback: grpc.sendUnaryData<WireAdmitResponse>,
    caller: NodeCaller | Refusal,
  ) => {
    const node = isRefusal(caller) ? caller : caller.nodeFor(call.request.node);
    if (isRefusal(node)) {
      const fields = { peer: call.getPeer(), error: node.message };
      // A node speaking for another is logged by `nodeFor` itself, once per pair.
      if (warned || !isRefusal(caller)) logger.debug("refused an admission", fields);
      else {
        logger.warn("refused an admission (logged once; --debug shows every one)", fields);
        warned = true;
      }
      callback({ code: grpcStatusOf(node), details: node.message }, null);
      return;
    }
    const request = { ...call.request, node };
    if (!request.node) {
      callback({ code: grpc.status.INVALID_ARGUMENT, details: "AdmitRequest.node is empty" }, null);
      return;
    }
    try {
      callback(null, {
        decisions: answerAdmit(coordinator, request, logger),
        server_id: serverId,
        retry_after_ms: retryAfterMs(coordinator.nodes, request.want.length),
      });
    } catch (error) {
      if (!(error instanceof WavesLimitError)) throw error;
      const code = error.kind === "invalid"
        ? grpc.status.INVALID_ARGUMENT
        : grpc.status.RESOURCE_EXHAUSTED;
      logger.debug("refused an admission past a bound", {
        node: request.node,
        error: error.message,
      });
      callback({ code, details: error.message }, null);
    }
  };
  return {
    definition: WavesService.service,
    implementation: { Admit: admit } as grpc.UntypedServiceImplementation,
    serverId,
    snapshot: () => coordinator.snapshot(),
  };
}

/**
 * Applies a node's news to the coordinator, then decides every image it wants, in order. Throws
 * a {@linkcode WavesLimitError}, before applying anything, for a request past a bound. The node
 * is a plain parameter of every coordinator call, taken from `request.node`.
 */
export function answerAdmit(
  coordinator: WaveCoordinator,
  request: WireAdmitRequest,
  logger?: Logger,
): WireDecision[] {
  const { node } = request;
  const released = request.released ?? [];
  const failed = request.failed.map((f) => f.image);
  const lists = { ...request, released, failed };
  checkRequestNames({ node, lists: pick(lists, LISTS) }, coordinator.limits);
  coordinator.assertRoom(node, LISTS.flatMap((field) => lists[field]));
  applyNews(coordinator, request, released);
  return request.want.map((image) => {
    const decision = coordinator.admit(node, image);
    logger?.debug("admission", { node, image, ...decision });
    return decision.pull
      ? { pull: true, first_wave: decision.firstWave, wait_reason: "" }
      : { pull: false, first_wave: false, wait_reason: decision.reason };
  });
}

const LISTS = ["want", "progressed", "pulled", "present", "failed", "released"] as const;

function pick<T, K extends keyof T>(value: T, keys: readonly K[]): Record<string, T[K]> {
  return Object.fromEntries(keys.map((key) => [key, value[key]]));
}

/** A node's news: a full report replaces what it was known to have; otherwise each item. */
function applyNews(coordinator: WaveCoordinator, request: WireAdmitRequest, released: string[]) {
  const { node } = request;
  if (request.full_report) {
    coordinator.restore(node, {
      have: [...request.pulled, ...request.present],
      pulling: request.progressed,
    });
  } else {
    for (const image of request.pulled) coordinator.landed(node, image, { pulled: true });
    for (const image of request.present) coordinator.landed(node, image, { pulled: false });
    for (const image of request.progressed) coordinator.renew(node, image);
  }
  for (const image of released) coordinator.release(node, image);
  for (const failure of request.failed) {
    coordinator.failed(node, failure.image, {
      rateLimited: failure.rate_limited,
      permanent: failure.permanent ?? false,
    });
  }
}
