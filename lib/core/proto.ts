/**
 * Turns the `.proto` wire contracts of `proto/` into gRPC service constructors.
 *
 * The contracts are imported as text modules, so they are embedded in the compiled binary and
 * found the same way under `deno run`: nothing is read from disk beside the program.
 *
 * Importing it installs the HTTP/2 GOAWAY mitigation (`http2_goaway_mitigation.ts`).
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import { fromJSON } from "@grpc/proto-loader";
import protobuf from "protobufjs";
import { installHttp2GoawayMitigation } from "./http2_goaway_mitigation.ts";

// Every gRPC client and server of ours is built from these constructors: mitigate
// denoland/deno#36788 before any of them can open an HTTP/2 session.
installHttp2GoawayMitigation();

/**
 * Parses protobuf source text and returns its gRPC package object, with field names kept as
 * written in the `.proto` file (snake_case), 64-bit integers as numbers and defaults filled in.
 *
 * @example
 * ```ts
 * import criProto from "../../proto/cri.proto" with { type: "text" };
 * import { loadProto, serviceConstructor } from "./proto.ts";
 *
 * const ImageService = serviceConstructor(loadProto(criProto), "runtime.v1.ImageService");
 * ```
 */
export function loadProto(source: string): grpc.GrpcObject {
  const root = protobuf.parse(source, { keepCase: true }).root;
  const definition = fromJSON(root.toJSON(), {
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(definition);
}

/** Looks up a service constructor by its dotted path (`runtime.v1.ImageService`) in a package. */
export function serviceConstructor(
  pkg: grpc.GrpcObject,
  path: string,
): grpc.ServiceClientConstructor {
  let node: unknown = pkg;
  for (const part of path.split(".")) {
    node = (node as Record<string, unknown> | undefined)?.[part];
  }
  if (typeof node !== "function") {
    throw new Error(`The proto package has no service ${path}; check the names in proto/.`);
  }
  return node as grpc.ServiceClientConstructor;
}
