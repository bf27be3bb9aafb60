/**
 * A `/Waves/Admit` request with every list empty but those given, for tests and benchmarks that
 * speak the waves protocol as a node would.
 *
 * @module
 */
import type { WireAdmitRequest } from "../lib/waves/protocol.ts";

/**
 * Builds node `node`'s request from `fields`, every other list empty and no full report.
 *
 * @example
 * ```ts
 * import { admitRequest } from "./admit_request.ts";
 *
 * const ask = admitRequest("node-1", { want: ["registry.example/app:1"] });
 * ```
 */
export function admitRequest(
  node: string,
  fields: Partial<WireAdmitRequest> = {},
): WireAdmitRequest {
  return {
    node,
    want: [],
    progressed: [],
    pulled: [],
    present: [],
    failed: [],
    full_report: false,
    ...fields,
  };
}
