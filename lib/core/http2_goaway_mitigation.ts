/**
 * A narrow mitigation of denoland/deno#36788: Deno 2.9.4–2.9.6 abort (`free(): invalid pointer`,
 * the nghttp2 assertion `find_stream_on_goaway_func`, exit 134 or 139) when a `node:http2`
 * session, client or server, *receives* a GOAWAY frame.
 *
 * Why: Deno's polyfill (`ext/node/polyfills/http2.ts`, `onGoawayData`) emits `goaway` and then
 * closes or destroys the session synchronously, while nghttp2 is still processing that very
 * frame; freeing the session there is a use-after-free. Every standard gRPC peer sends GOAWAY
 * when it closes gracefully (a Node.js grpc-js client's `close()`, grpc-go's `GracefulStop` and
 * connection-age limits), so without this `aggregate-metrics` dies when a client says goodbye,
 * and `fetch` dies when its runtime's socket stops gracefully.
 *
 * What it does: while a session is handling a received GOAWAY (from the moment its `goaway`
 * event is emitted until the next macrotask), `close()` and `destroy()` on that session are
 * deferred to the next macrotask, after nghttp2 has finished with the frame. Nothing else
 * changes: every other close and destroy runs at once, and the deferred ones run with the same
 * arguments.
 *
 * What it costs: a session that received a GOAWAY is torn down one macrotask later (well under a
 * millisecond); the prototypes of `node:http2`'s `Http2Session` are patched for the whole
 * process; and it must be checked on every Deno upgrade. Pinning Deno 2.9.3 instead was
 * rejected: it leaks memory per connection (74 → 257 MiB over 3,000 connections, measured) and
 * would freeze every later fix.
 *
 * How to remove it: `lib/core/http2_goaway_mitigation_test.ts` runs the unmitigated case in a
 * subprocess and fails with "upstream fixed: remove the mitigation" once Deno no longer aborts.
 * Then delete this file, its test, the calls in `main.ts` and `lib/core/proto.ts`, and the
 * README's "Deno's HTTP/2 GOAWAY abort" section.
 *
 * @module
 */
import http2 from "node:http2";

const INSTALLED = Symbol.for("image-prefetcher.http2GoawayMitigation");

type SessionMethod = (this: http2.Http2Session, ...args: unknown[]) => unknown;

/** Sessions handling a received GOAWAY, until the next macrotask. */
const handlingGoaway = new WeakSet<http2.Http2Session>();

/**
 * Installs the mitigation for the whole process; installing it again does nothing. Call it
 * before the first HTTP/2 session exists (`lib/core/proto.ts` does, for every gRPC service of
 * ours).
 *
 * @example
 * ```ts
 * import { installHttp2GoawayMitigation } from "./http2_goaway_mitigation.ts";
 *
 * installHttp2GoawayMitigation();
 * ```
 */
export function installHttp2GoawayMitigation(): void {
  const proto = sessionPrototype();
  if (proto[INSTALLED]) return;
  const emit = proto.emit as SessionMethod;
  const close = proto.close as SessionMethod;
  const destroy = proto.destroy as SessionMethod;
  proto.emit = function (this: http2.Http2Session, event: unknown, ...args: unknown[]) {
    if (event === "goaway") {
      handlingGoaway.add(this);
      setTimeout(() => handlingGoaway.delete(this), 0);
    }
    return emit.call(this, event, ...args);
  };
  proto.close = deferredWhileHandlingGoaway(close);
  proto.destroy = deferredWhileHandlingGoaway(destroy);
  proto[INSTALLED] = true;
}

/** Tells whether {@linkcode installHttp2GoawayMitigation} has run in this process. */
export function isHttp2GoawayMitigationInstalled(): boolean {
  return Boolean(sessionPrototype()[INSTALLED]);
}

/** `Http2Session.prototype`, which Deno's `node:http2` exports (Node's does not). */
function sessionPrototype(): Record<string | symbol, unknown> {
  const session = (http2 as unknown as { Http2Session?: { prototype: object } }).Http2Session;
  if (typeof session?.prototype !== "object") {
    throw new Error(
      "node:http2 no longer exports Http2Session, so the GOAWAY mitigation " +
        "(lib/core/http2_goaway_mitigation.ts, denoland/deno#36788) cannot be installed; run " +
        "with the Deno version of the Dockerfile, or update the mitigation for this one",
    );
  }
  return session.prototype as Record<string | symbol, unknown>;
}

function deferredWhileHandlingGoaway(method: SessionMethod): SessionMethod {
  return function (this: http2.Http2Session, ...args: unknown[]) {
    if (!handlingGoaway.has(this)) return method.apply(this, args);
    // Scheduled after the timer that ends the GOAWAY handling, so it runs for real then.
    setTimeout(() => method.apply(this, args), 0);
  };
}
