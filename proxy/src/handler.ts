/**
 * The request handler of the registry API listeners: route, decode the name, try the cache registry (unless its
 * circuit breaker says otherwise), fall back to the origin, then record one metric set and one log line.
 *
 * The cache-or-origin choice is made on the cache's status line and headers only (cache.ts), so a fallback never
 * follows a partial response. A manifest request by tag that hits the cache is served from the cache: the operator
 * keeps cached tags fresh, and since images are copied byte for byte the digest it returns for `HEAD …/<tag>` is one
 * the cache can serve for the kubelet's follow-up `GET …/<digest>`. A miss on either request falls back on its own.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import type { CircuitBreaker } from "./breaker";
import type { CacheUpstream } from "./cache";
import { isProxyError, sendError, type ProxyError } from "./errors";
import { API_VERSION_HEADER, upstreamRequestHeaders } from "./headers";
import type { ProxyMetrics } from "./metrics";
import { decodeName, type OriginName } from "./names";
import type { OriginUpstream } from "./origin";
import { CLIENT_CLOSED, describeError, logRequest, type Fallback, type Summary } from "./request-log";
import { parseRoute, type Route, type RouteKind } from "./routes";

/** What the handler needs; built by wiring.ts, or by tests with their own upstreams. */
export interface HandlerDeps {
  log: Logger;
  metrics: ProxyMetrics;
  cache: CacheUpstream;
  origin: OriginUpstream;
  breaker: CircuitBreaker;
}

/** A decoded manifest or blob request. */
interface ContentRequest {
  name: OriginName;
  kind: RouteKind;
  method: "GET" | "HEAD";
  headers: Record<string, string>;
  /** `/manifests/<reference>` or `/blobs/<digest>`. */
  suffix: string;
}

const PING_BODY = "{}";
const INTERNAL_ERROR = { statusCode: 500, code: "UPSTREAM_ERROR", message: "internal error" } as const;

/** Creates the `request` listener of the registry API servers. */
export function createRequestHandler(deps: HandlerDeps): (req: IncomingMessage, res: ServerResponse) => void {
  let sequence = 0;
  return function handleRegistryRequest(req, res) {
    const started = performance.now();
    const reqId = ++sequence;
    const route = parseRoute(req.method ?? "", req.url ?? "");
    deps.metrics.requestStarted();
    serve(deps, route, req, res).then(
      summary => logRequest(deps, { reqId, route, req, started }, summary),
      (err: unknown) => {
        // serve() handles its failures: anything here is a bug, and must not leave the socket hanging.
        deps.log.error({ err, reqId }, "request handler failed");
        if (res.headersSent) res.destroy();
        else sendError(res, INTERNAL_ERROR, API_VERSION_HEADER);
        const summary: Summary = { status: 500, source: "proxy", registry: "", bytes: 0, error: err };
        logRequest(deps, { reqId, route, req, started }, summary);
      },
    );
  };
}

async function serve(
  deps: HandlerDeps,
  route: Route,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<Summary> {
  if (route.type === "ping") {
    res.writeHead(200, { ...API_VERSION_HEADER, "content-type": "application/json", "content-length": "2" });
    res.end(PING_BODY);
    return { status: 200, source: "proxy", registry: "", bytes: 0 };
  }
  if (route.type === "refused") return refuse(res, route.error, route.allow);
  let name: OriginName;
  try {
    name = decodeName(route.name);
  } catch (err) {
    if (!isProxyError(err)) throw err;
    return refuse(res, err);
  }
  const request: ContentRequest = {
    name,
    kind: route.kind,
    method: req.method === "HEAD" ? "HEAD" : "GET",
    headers: upstreamRequestHeaders(req.headers),
    suffix: `/${route.kind === "blob" ? "blobs" : "manifests"}/${route.reference}`,
  };
  const decision = deps.breaker.decide();
  if (decision === "probe") probeCache(deps);
  if (decision !== "cache") return fromOrigin(deps, request, res, { fallback: "breaker_open" });
  const cached = await fromCache(deps, request, res);
  return "status" in cached ? cached : fromOrigin(deps, request, res, cached);
}

/** Tries the cache and feeds the breaker: a finished summary when the cache answered the client, else why not. */
async function fromCache(
  deps: HandlerDeps,
  r: ContentRequest,
  res: ServerResponse,
): Promise<Summary | Fallback> {
  const path = `/v2/${r.name.cacheRepository}${r.suffix}`;
  const cached = await deps.cache.serve({ method: r.method, path, headers: r.headers }, res);
  const base = { registry: r.name.registry, repository: r.name.repository, source: "cache" } as const;
  switch (cached.outcome) {
    case "served": {
      deps.metrics.upstreamLatency("cache", r.kind, cached.headersMs / 1000);
      deps.metrics.bytesServed("cache", r.kind, cached.bytes);
      if (cached.error && !cached.clientGone) deps.breaker.recordFailure();
      else deps.breaker.recordSuccess();
      const status = cached.clientGone ? CLIENT_CLOSED : cached.status;
      return { ...base, status, bytes: cached.bytes, ...(cached.error ? { error: cached.error } : {}) };
    }
    case "client-gone":
      return { ...base, status: CLIENT_CLOSED, bytes: 0 };
    case "miss":
      deps.metrics.upstreamLatency("cache", r.kind, cached.headersMs / 1000);
      deps.breaker.recordSuccess();
      return { fallback: "miss" };
    case "error": {
      deps.breaker.recordFailure();
      const why = cached.error ? describeError(cached.error) : `cache answered HTTP ${cached.status ?? "?"}`;
      return { fallback: cached.timeout ? "timeout" : "error", cacheError: why };
    }
  }
}

/** Serves from the origin (content, or the origin's error status with an OCI body). */
async function fromOrigin(
  deps: HandlerDeps,
  r: ContentRequest,
  res: ServerResponse,
  fallback: Fallback,
): Promise<Summary> {
  deps.metrics.cacheFallback(fallback.fallback);
  const { registry, repository } = r.name;
  const base = { registry, repository, source: "origin", ...fallback } as const;
  const request = { registry, repository, kind: r.kind, method: r.method, headers: r.headers };
  const served = await deps.origin.serve({ ...request, path: `/v2/${repository}${r.suffix}` }, res);
  if (served.outcome === "client-gone") return { ...base, status: CLIENT_CLOSED, bytes: 0 };
  deps.metrics.upstreamLatency("origin", r.kind, served.headersMs / 1000);
  if (served.outcome === "failed") return { ...base, status: served.status, bytes: 0, error: served.cause };
  deps.metrics.bytesServed("origin", r.kind, served.bytes);
  const status = served.clientGone ? CLIENT_CLOSED : served.status;
  return { ...base, status, bytes: served.bytes, ...(served.error ? { error: served.error } : {}) };
}

function refuse(res: ServerResponse, error: ProxyError, allow?: string): Summary {
  const headers: Record<string, string> = { ...API_VERSION_HEADER, ...(allow ? { allow } : {}) };
  sendError(res, { statusCode: error.statusCode, code: error.code, message: error.message }, headers);
  return { status: error.statusCode, source: "proxy", registry: "", bytes: 0, error };
}

/** Half-open breaker: one background `GET /v2/` decides whether the cache is back; no request waits for it. */
function probeCache(deps: HandlerDeps): void {
  void deps.cache.probe().then(ok => {
    if (ok) deps.breaker.recordSuccess();
    else deps.breaker.recordFailure();
  });
}
