/**
 * The `Waves` gRPC service (`/Waves/Admit`) from `proto/waves.proto`, and its messages as
 * TypeScript types, for the coordinator's server and for the nodes' client.
 *
 * @module
 */
import type * as grpc from "@grpc/grpc-js";
import wavesProto from "../../proto/waves.proto" with { type: "text" };
import { loadProto, serviceConstructor } from "../core/proto.ts";

/** The `Waves` service constructor. */
export const WavesService: grpc.ServiceClientConstructor = serviceConstructor(
  loadProto(wavesProto),
  "Waves",
);

/** A pull that failed, as reported to the coordinator. */
export interface WireFailure {
  /** The image. */
  image: string;
  /** The registry answered 429. */
  rate_limited: boolean;
  /** Retrying cannot help (not found, denied); absent from older nodes. */
  permanent?: boolean;
}

/** `AdmitRequest`: a node's news and the images it wants (field names as in the proto). */
export interface WireAdmitRequest {
  /** The node's name. */
  node: string;
  /** Images it would pull now. */
  want: string[];
  /** Images whose pull progressed since the last request. */
  progressed: string[];
  /** Images pulled since the last request. */
  pulled: string[];
  /** Images found present since the last request. */
  present: string[];
  /** Pulls that failed since the last request. */
  failed: WireFailure[];
  /** The lists above are the node's whole state. */
  full_report: boolean;
  /** Admitted images the node will not pull after all; absent from older nodes. */
  released?: string[];
}

/** `Decision`: pull now, or why not. */
export interface WireDecision {
  /** Pull now. */
  pull: boolean;
  /** In the image's first wave. */
  first_wave: boolean;
  /** Why it waits, when it does. */
  wait_reason: string;
}

/** `AdmitResponse`. */
export interface WireAdmitResponse {
  /** One per wanted image, in order. */
  decisions: WireDecision[];
  /** The coordinator's identity, new at every start. */
  server_id: string;
  /** When to ask again. */
  retry_after_ms: number;
}
