/**
 * The ops listener: `/healthz` (the process serves HTTP), `/readyz` (the registry API listeners are bound and the
 * proxy is not draining) and `/metrics` (the proxy's private Prometheus registry). Readiness does not depend on the
 * cache registry: with the cache down the proxy still serves every pull from the origins.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { ProxyMetrics } from "./metrics";

/** What the ops handler reads. */
export interface OpsDeps {
  metrics: ProxyMetrics;
  ready: () => boolean;
}

/** Creates the `request` listener of the ops server. */
export function createOpsHandler(deps: OpsDeps): (req: IncomingMessage, res: ServerResponse) => void {
  return function handleOpsRequest(req, res) {
    const path = (req.url ?? "").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") return text(res, 405, "method not allowed\n");
    if (path === "/healthz") return text(res, 200, "ok\n");
    if (path === "/readyz") return deps.ready() ? text(res, 200, "ok\n") : text(res, 503, "not ready\n");
    if (path !== "/metrics") return text(res, 404, "not found\n");
    deps.metrics.registry.metrics().then(
      body => {
        res.writeHead(200, { "content-type": deps.metrics.registry.contentType });
        res.end(body);
      },
      () => text(res, 500, "metrics collection failed\n"),
    );
  };
}

function text(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, {
    "content-type": "text/plain; charset=utf-8",
    "content-length": String(Buffer.byteLength(body)),
  });
  res.end(body);
}
