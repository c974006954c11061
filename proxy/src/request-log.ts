/**
 * The one log line and the request metrics recorded when a registry request is over. The line is an object with a
 * constant message (`"request"`); typed errors appear as `code` + `reason`, never with a credential (the logger
 * redacts Authorization headers and tokens anyway, see logger.ts).
 */
import type { IncomingMessage } from "node:http";
import type { Logger } from "pino";
import { isRegistryError } from "../../registry-client/src/errors";
import { isProxyError } from "./errors";
import type { FallbackReason, ProxyMetrics, Source } from "./metrics";
import type { Route } from "./routes";

/** Status recorded when the client left before the response was complete (nginx's convention). */
export const CLIENT_CLOSED = 499;

/** Why a request went to the origin. */
export interface Fallback {
  fallback: FallbackReason;
  /** What went wrong with the cache, when it failed (not on a plain miss). */
  cacheError?: string;
}

/** The outcome of one request. */
export interface Summary extends Partial<Fallback> {
  status: number;
  source: Source;
  /** Origin registry; `""` when the request had none (ping, refusals). */
  registry: string;
  repository?: string;
  bytes: number;
  /** Why the response was refused, failed, or destroyed mid-stream. */
  error?: unknown;
}

/** What identifies the request in its log line. */
export interface RequestInfo {
  reqId: number;
  route: Route;
  req: IncomingMessage;
  /** performance.now() at arrival. */
  started: number;
}

/** Records the request's metrics and writes its log line (warn when it broke or failed with a 5xx). */
export function logRequest(
  deps: { log: Logger; metrics: ProxyMetrics },
  info: RequestInfo,
  s: Summary,
): void {
  const { route, req } = info;
  const kind = route.type === "content" ? route.kind : route.type === "ping" ? "ping" : "other";
  deps.metrics.requestFinished({ registry: s.registry, kind, statusCode: s.status, source: s.source });
  const entry: Record<string, unknown> = {
    reqId: info.reqId,
    method: req.method,
    kind,
    status: s.status,
    source: s.source,
    bytes: s.bytes,
    durationMs: Math.round((performance.now() - info.started) * 100) / 100,
  };
  if (route.type === "content") {
    Object.assign(entry, { registry: s.registry, repository: s.repository, reference: route.reference });
  } else {
    entry.path = req.url;
  }
  if (s.fallback) entry.fallback = s.fallback;
  if (s.cacheError) entry.cacheError = s.cacheError;
  if (s.error !== undefined) Object.assign(entry, errorFields(s.error));
  const broken = s.error !== undefined && s.status < 400 && s.status !== CLIENT_CLOSED;
  if (broken || s.status >= 500) deps.log.warn(entry, "request");
  else deps.log.info(entry, "request");
}

/** `CODE: message` of an error, for a log field. */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  return `${(error as { code?: string }).code ?? error.name}: ${error.message}`;
}

/** Typed errors are one readable line (code + message); the handler's own bugs are logged with their stack. */
function errorFields(error: unknown): Record<string, unknown> {
  if (isProxyError(error) || isRegistryError(error)) return { code: error.code, reason: error.message };
  return { reason: describeError(error) };
}
