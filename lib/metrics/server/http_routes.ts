/**
 * The HTTP side of `aggregate-metrics` as a route table: one small function per view, so that
 * each can be tested without a port. `GET /healthz` is open; every other route is authorized by
 * the server's {@linkcode ServerAuth} from the `Authorization` header (never the query string).
 *
 * @module
 */
import { resultToJson } from "../protocol.ts";
import { httpRefusal, type ServerAuth } from "../../core/bearer_token.ts";
import { renderHtmlReport } from "./html_report.ts";
import { formatPrometheus, PROMETHEUS_CONTENT_TYPE, wantsPrometheus } from "./prometheus.ts";
import type { MetricsStore } from "./store.ts";
import type { WavesSnapshot } from "../../waves/snapshot.ts";

/** What every route reads. */
export interface RouteContext {
  /** The results. */
  store: MetricsStore;
  /** Seconds between refreshes of the HTML report while a run is in progress. */
  reportRefreshSeconds?: number;
  /** The cluster-wide waves picture, when the server coordinates waves. */
  waves?: () => WavesSnapshot;
}

/** One view: the request and its parsed address in, the answer out. */
export type Route = (request: Request, url: URL, context: RouteContext) => Response;

const NO_STORE = { "cache-control": "no-store" };

/** Every view the server has, by path. */
export const ROUTES: Readonly<Record<string, Route>> = Object.freeze({
  "/": htmlReportRoute,
  "/metrics": metricsRoute,
  "/summary": summaryRoute,
});

/** Paths served without the bearer token. */
const OPEN_ROUTES: Readonly<Record<string, Route>> = Object.freeze({
  "/healthz": () => new Response("ok\n"),
});

/**
 * Answers one request from the route table: 405 for anything but GET and HEAD, 404 naming the
 * views for an unknown path, 401, 403 or 503 when `auth` refuses the reader.
 *
 * @example
 * ```ts
 * import { MetricsStore } from "./store.ts";
 * import { openAuth } from "../../core/bearer_token.ts";
 * import { handleHttp } from "./http_routes.ts";
 *
 * const response = await handleHttp(new Request("http://localhost/summary"), {
 *   store: new MetricsStore(),
 * }, openAuth());
 * console.log(response.status, await response.json());
 * ```
 */
export async function handleHttp(
  request: Request,
  context: RouteContext,
  auth: ServerAuth,
): Promise<Response> {
  const url = new URL(request.url);
  if (request.method !== "GET" && request.method !== "HEAD") {
    return new Response("only GET is served\n", { status: 405, headers: { allow: "GET" } });
  }
  const open = OPEN_ROUTES[url.pathname];
  if (open) return open(request, url, context);
  const route = Object.hasOwn(ROUTES, url.pathname) ? ROUTES[url.pathname] : undefined;
  if (!route) {
    return new Response(`not found; try ${Object.keys(ROUTES).join(", ")}\n`, { status: 404 });
  }
  const refused = await auth.reader(
    request.headers.get("authorization") ?? undefined,
    url.pathname,
  );
  if (refused) return httpRefusal(refused);
  return route(request, url, context);
}

/** `GET /metrics`: every result as JSON (the original's format), or Prometheus text if asked. */
function metricsRoute(request: Request, url: URL, { store }: RouteContext): Response {
  if (wantsPrometheus(request.headers.get("accept")) || url.searchParams.has("prometheus")) {
    return new Response(formatPrometheus(store), {
      headers: { "content-type": PROMETHEUS_CONTENT_TYPE, ...NO_STORE },
    });
  }
  return new Response(jsonResults(store), {
    headers: { "content-type": "application/json", ...NO_STORE },
  });
}

/** `GET /summary[?grid=1]`: the cluster summary as JSON. */
function summaryRoute(_request: Request, url: URL, { store, waves }: RouteContext): Response {
  const grid = ["1", "true"].includes(url.searchParams.get("grid") ?? "");
  return new Response(JSON.stringify({ ...store.summary({ grid }), waves: waves?.() }), {
    headers: { "content-type": "application/json", ...NO_STORE },
  });
}

/** `GET /`: the self-contained HTML report. */
function htmlReportRoute(_request: Request, _url: URL, context: RouteContext): Response {
  const html = renderHtmlReport(context.store.summary({ grid: true }), {
    refreshSeconds: context.reportRefreshSeconds,
    waves: context.waves?.(),
  });
  return new Response(html, {
    headers: { "content-type": "text/html; charset=utf-8", ...NO_STORE },
  });
}

/** Streams every result as one JSON array, a few thousand at a time. */
function jsonResults(store: MetricsStore): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  const iterator = store.results();
  let remaining = store.size;
  let first = true;
  return new ReadableStream({
    pull(controller) {
      const parts: string[] = [];
      if (first) parts.push("[");
      for (let i = 0; i < 2_000 && remaining > 0; i++, remaining--) {
        const next = iterator.next();
        if (next.done) {
          remaining = 0;
          break;
        }
        parts.push((first ? "\n" : ",\n") + JSON.stringify(resultToJson(next.value)));
        first = false;
      }
      if (remaining === 0) {
        parts.push("\n]\n");
        controller.enqueue(encoder.encode(parts.join("")));
        controller.close();
        return;
      }
      controller.enqueue(encoder.encode(parts.join("")));
    },
  });
}
