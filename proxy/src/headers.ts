/**
 * Header filtering, both ways, by allow-list: the proxy forwards only what content negotiation and resumable
 * downloads need, and returns only the content headers of the upstream response. Everything else (hop-by-hop
 * headers, Set-Cookie, Authorization, WWW-Authenticate challenges of an origin, the S3 headers of a redirect
 * target…) stays on its side.
 */
import type { IncomingHttpHeaders } from "node:http";

/** Request headers passed to the cache and the origin. */
export const FORWARDED_REQUEST_HEADERS: readonly string[] = ["accept", "range", "if-range"];

/** Response headers passed back to the client. */
export const FORWARDED_RESPONSE_HEADERS: readonly string[] = [
  "content-type",
  "content-length",
  "content-range",
  "docker-content-digest",
  "etag",
  "accept-ranges",
  "last-modified",
  "retry-after",
];

/** Set on every `/v2/` response, as registries do (some clients check it). */
export const API_VERSION_HEADER = { "docker-distribution-api-version": "registry/2.0" } as const;

type HeaderValue = string | string[] | number | undefined;

/** The request headers to forward upstream, joined to single strings. */
export function upstreamRequestHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of FORWARDED_REQUEST_HEADERS) {
    const value = joinValue(headers[name]);
    if (value !== undefined) out[name] = value;
  }
  return out;
}

/** The response headers to pass to the client, plus the API version header. */
export function clientResponseHeaders(headers: Record<string, HeaderValue>): Record<string, string> {
  const out: Record<string, string> = { ...API_VERSION_HEADER };
  for (const name of FORWARDED_RESPONSE_HEADERS) {
    const value = joinValue(headers[name]);
    if (value !== undefined) out[name] = value;
  }
  return out;
}

/**
 * The body length the response announces, or undefined when it is not framed by Content-Length (chunked).
 * Used to refuse ending a response that received fewer bytes than announced.
 */
export function declaredLength(headers: Record<string, HeaderValue>): number | undefined {
  const value = joinValue(headers["content-length"]);
  if (value === undefined || !/^\d+$/.test(value)) return undefined;
  return Number(value);
}

function joinValue(value: HeaderValue): string | undefined {
  if (value === undefined) return undefined;
  if (Array.isArray(value)) return value.length === 0 ? undefined : value.join(", ");
  return String(value);
}
