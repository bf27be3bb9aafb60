/**
 * An HTTP/1.1 reverse proxy in front of a registry that injects faults (stalls, latency,
 * bandwidth caps, error statuses, connection resets) and counts what it serves.
 *
 * @module
 */
import http from "node:http";
import type { Socket } from "node:net";
import { TokenBucket } from "./token_bucket.ts";

/** Which requests a fault applies to. */
export interface FaultMatch {
  /** Tested against the request path (with query). @default {/\/blobs\/sha256:/} */
  match?: RegExp;
  /** Request method, or `"*"` for any. @default {"GET"} */
  method?: string;
}

/** Answer matching requests with headers and some body, then go silent with the socket open. */
export interface StallFault extends FaultMatch {
  /** How many matching requests to stall. @default {Infinity} */
  count?: number;
  /**
   * Response bytes to send before going silent: 0 sends nothing, not even the status line;
   * more sends the headers and then that many body bytes.
   *
   * @default {0}
   */
  afterBytes?: number;
}

/** Answer matching requests with an error status instead of forwarding them. */
export interface FailFirstFault extends FaultMatch {
  /** How many matching requests to fail. */
  count: number;
  /** The status to answer with. @default {503} */
  status?: number;
}

/** Destroy the connection after some body bytes of matching responses. */
export interface ResetFault extends FaultMatch {
  /** How many matching responses to cut. */
  count: number;
  /** Body bytes to send before the reset. @default {0} */
  afterBytes?: number;
}

/** The faults a {@linkcode FaultProxy} applies; all off when omitted. */
export interface Faults {
  /** Stall matching requests. */
  stall?: StallFault;
  /** Delay before forwarding every request, in milliseconds. */
  latencyMs?: number;
  /** Cap on the combined response body rate of all connections, in bytes per second. */
  bandwidthBytesPerSecond?: number;
  /** Answer the next matching requests with an error status. */
  failFirst?: FailFirstFault;
  /** Cut the next matching responses mid-body. */
  resetAfterBytes?: ResetFault;
}

/** One request seen by the proxy; fields are updated while the request is in progress. */
export interface ProxyRequestRecord {
  /** Request method. */
  method: string;
  /** Request path with query. */
  path: string;
  /** Status sent to the client; 0 while none was sent. */
  status: number;
  /** Response body bytes sent to the client. */
  bytes: number;
  /** Whether the response was stalled. */
  stalled: boolean;
  /** The fault applied to this request, if any. */
  fault?: "stall" | "fail" | "reset";
  /** Number of the client connection it came on (1, 2, …), to tell keep-alive reuse apart. */
  connection: number;
}

/** Options for {@linkcode startFaultProxy}. */
export interface StartFaultProxyOptions {
  /** Faults to start with. @default {{}} */
  faults?: Faults;
}

/** A running fault proxy; stop it with `stop()` or `await using`. */
export interface FaultProxy extends AsyncDisposable {
  /** `127.0.0.1:<port>`, for image references and containerd's registry hosts. */
  readonly host: string;
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** Response body bytes sent to clients since start or `resetCounters()`. */
  readonly bytesServed: number;
  /** Requests seen since start or `resetCounters()`, oldest first. */
  readonly requests: readonly ProxyRequestRecord[];
  /** Client connections open now. */
  readonly activeConnections: number;
  /** Most client connections open at once since start or `resetCounters()`. */
  readonly peakConnections: number;
  /** Replaces all faults; `setFaults({})` turns them off. Counts restart from the new values. */
  setFaults(faults: Faults): void;
  /** Zeroes `bytesServed`, empties `requests` and sets `peakConnections` to the current count. */
  resetCounters(): void;
  /** Closes the listener and destroys every connection, stalled ones included. */
  stop(): Promise<void>;
}

const DEFAULT_MATCH = /\/blobs\/sha256:/;
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/**
 * Starts a reverse proxy on a free port of 127.0.0.1 that forwards every request to `upstream`
 * (e.g. `http://127.0.0.1:5000`) and streams the answer back, applying the current faults.
 *
 * The `Host` header is passed through unchanged, so the registry builds upload locations that
 * point at the proxy.
 *
 * @example
 * ```ts
 * import { startFaultProxy } from "./fault_proxy.ts";
 * import { startRegistry } from "./registry.ts";
 *
 * await using registry = await startRegistry();
 * await using proxy = await startFaultProxy(registry.url);
 * proxy.setFaults({ stall: { count: 1 } }); // the next blob GET hangs
 * ```
 */
export async function startFaultProxy(
  upstream: string,
  options: StartFaultProxyOptions = {},
): Promise<FaultProxy> {
  const target = new URL(upstream);
  const agent = new http.Agent({ keepAlive: true });
  const sockets = new Set<Socket>();
  const connectionIds = new WeakMap<Socket, number>();
  let connectionCount = 0;
  const handlers = new Set<Promise<void>>();
  let faults: Faults = {};
  let remaining = { stall: 0, fail: 0, reset: 0 };
  let bucket: TokenBucket | undefined;
  let bytesServed = 0;
  let requests: ProxyRequestRecord[] = [];
  let peakConnections = 0;

  const setFaults = (next: Faults) => {
    faults = { ...next };
    remaining = {
      stall: next.stall ? next.stall.count ?? Infinity : 0,
      fail: next.failFirst?.count ?? 0,
      reset: next.resetAfterBytes?.count ?? 0,
    };
    const rate = next.bandwidthBytesPerSecond;
    if (rate === undefined) bucket = undefined;
    else if (bucket) bucket.bytesPerSecond = rate;
    else bucket = new TokenBucket(rate);
  };
  setFaults(options.faults ?? {});

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const record: ProxyRequestRecord = {
      method: req.method ?? "GET",
      path: req.url ?? "/",
      status: 0,
      bytes: 0,
      stalled: false,
      connection: connectionIds.get(req.socket as Socket) ?? 0,
    };
    requests.push(record);
    // Deno's node:http does not always emit "close" on a response whose socket went away
    // mid-body, so the socket's own "close" counts too.
    const closed = new Promise<void>((resolve) => {
      const done = () => {
        req.socket.off("close", done);
        resolve();
      };
      res.once("close", done);
      req.socket.once("close", done);
      if (req.socket.destroyed) done();
    });
    let clientGone = false;
    closed.then(() => clientGone = true);

    if (faults.latencyMs) await delay(faults.latencyMs, closed);
    if (clientGone) return;

    const stall = take("stall", faults.stall, record);
    if (stall) record.stalled = true;
    if (stall && (stall.afterBytes ?? 0) === 0) {
      req.resume();
      await closed;
      return;
    }
    const fail = take("fail", faults.failFirst, record);
    if (fail) {
      const body = JSON.stringify({
        errors: [{ code: "UNAVAILABLE", message: "injected by the fault proxy" }],
      });
      record.status = fail.status ?? 503;
      res.writeHead(record.status, {
        "content-type": "application/json",
        "content-length": String(body.length),
      });
      res.end(body);
      record.bytes = body.length;
      bytesServed += body.length;
      req.resume();
      return;
    }
    const reset = stall ? undefined : take("reset", faults.resetAfterBytes, record);

    const headers: http.OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (!HOP_BY_HOP.has(name) && value !== undefined) headers[name] = value;
    }
    let upstreamRes: http.IncomingMessage;
    const upstreamReq = http.request({
      protocol: target.protocol,
      hostname: target.hostname,
      port: target.port,
      method: record.method,
      path: record.path,
      headers,
      agent,
    });
    try {
      upstreamRes = await new Promise<http.IncomingMessage>((resolve, reject) => {
        upstreamReq.once("response", resolve);
        upstreamReq.once("error", reject);
        req.pipe(upstreamReq);
      });
    } catch (error) {
      if (!clientGone && !res.headersSent) {
        const body = `fault proxy: upstream ${upstream} failed: ${(error as Error).message}\n`;
        record.status = 502;
        res.writeHead(502, { "content-type": "text/plain", "content-length": body.length });
        res.end(body);
      }
      return;
    }
    if (clientGone) {
      upstreamRes.destroy();
      return;
    }

    const responseHeaders: http.OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(upstreamRes.headers)) {
      if (!HOP_BY_HOP.has(name) && value !== undefined) responseHeaders[name] = value;
    }
    record.status = upstreamRes.statusCode ?? 502;
    res.writeHead(record.status, responseHeaders);
    const limit = stall ? stall.afterBytes ?? 0 : reset ? reset.afterBytes ?? 0 : Infinity;
    const abort = new AbortController();
    closed.then(() => abort.abort());
    let lastWrite: Promise<void> = Promise.resolve();
    try {
      if (limit === 0) res.flushHeaders();
      for await (const chunk of upstreamRes as AsyncIterable<Uint8Array>) {
        let offset = 0;
        while (offset < chunk.byteLength && record.bytes < limit && !clientGone) {
          let n = Math.min(chunk.byteLength - offset, limit - record.bytes);
          if (bucket) n = await bucket.take(n, abort.signal);
          if (clientGone || n === 0) break;
          let more = true;
          lastWrite = new Promise<void>((resolve) => {
            more = res.write(chunk.subarray(offset, offset + n), () => resolve());
          });
          offset += n;
          record.bytes += n;
          bytesServed += n;
          if (!more) await Promise.race([new Promise((r) => res.once("drain", r)), closed]);
        }
        if (clientGone || record.bytes >= limit) break;
      }
    } catch {
      // upstream broke off; the client sees a short body
      res.destroy();
      return;
    } finally {
      upstreamRes.destroy();
    }
    if (clientGone) return;
    if (stall) {
      await closed;
    } else if (reset && record.bytes >= limit) {
      // Let the bytes sent so far reach the client before the connection is cut.
      await Promise.race([lastWrite, closed]);
      res.destroy();
      req.socket.destroy();
    } else {
      res.end();
    }
  };

  // Decrements a fault's budget if it applies to this request and returns the fault.
  function take<F extends FaultMatch>(
    kind: "stall" | "fail" | "reset",
    fault: F | undefined,
    record: ProxyRequestRecord,
  ): F | undefined {
    if (!fault || remaining[kind] <= 0) return undefined;
    const method = fault.method ?? "GET";
    if (method !== "*" && method !== record.method) return undefined;
    const match = fault.match ?? DEFAULT_MATCH;
    match.lastIndex = 0; // a /g or /y pattern would otherwise remember the last position
    if (!match.test(record.path)) return undefined;
    remaining[kind]--;
    record.fault = kind;
    return fault;
  }

  const server = http.createServer((req, res) => {
    const done = handle(req, res).catch(() => {
      res.destroy();
    });
    handlers.add(done);
    done.finally(() => handlers.delete(done));
  });
  // A stalled request must stay open as long as the client waits.
  server.requestTimeout = 0;
  server.headersTimeout = 0;
  server.timeout = 0;
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    connectionIds.set(socket, ++connectionCount);
    peakConnections = Math.max(peakConnections, sockets.size);
    socket.once("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  const host = `127.0.0.1:${port}`;

  let stopping: Promise<void> | undefined;
  const stop = () =>
    stopping ??= (async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
      await Promise.allSettled([...handlers]);
      agent.destroy();
    })();

  return {
    host,
    url: `http://${host}`,
    get bytesServed() {
      return bytesServed;
    },
    get requests() {
      return requests;
    },
    get activeConnections() {
      return sockets.size;
    },
    get peakConnections() {
      return peakConnections;
    },
    setFaults,
    resetCounters() {
      bytesServed = 0;
      requests = [];
      peakConnections = sockets.size;
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/** Waits `ms` milliseconds, or less if `cancel` settles first (no timer is left behind). */
function delay(ms: number, cancel: Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    cancel.then(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
