/**
 * Routing of the registry API subset the proxy serves: `GET|HEAD /v2/`, `/v2/<name>/manifests/<reference>` and
 * `/v2/<name>/blobs/<digest>`. Everything else is refused with an OCI error (v1 accepted any method and answered
 * unparsable names with an empty 200, docs/v1-differences.md B2).
 */
import { isDigest } from "../../registry-client/src/digest";
import { ProxyError } from "./errors";

/** What a request is about; `kind` is also a metric label. */
export type RouteKind = "manifest" | "blob";

/** A parsed request line. */
export type Route =
  | { type: "ping" }
  | { type: "content"; kind: RouteKind; name: string; reference: string }
  | { type: "refused"; error: ProxyError; allow?: string };

const ALLOWED_METHODS = "GET, HEAD";
// `<name>` is greedy: the part before the LAST /manifests/ or /blobs/ (a repository may contain "blobs").
const CONTENT_RE = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/;
const TAG_RE = /^\w[\w.-]{0,127}$/;

/** Parses a method and request target (query ignored). Pure; never throws. */
export function parseRoute(method: string, target: string): Route {
  const query = target.indexOf("?");
  const path = query < 0 ? target : target.slice(0, query);
  const readOnly = method === "GET" || method === "HEAD";
  if (path === "/v2/" || path === "/v2") {
    return readOnly ? { type: "ping" } : methodNotAllowed(method, path);
  }
  const match = CONTENT_RE.exec(path);
  if (match?.[1] === undefined || match[2] === undefined || match[3] === undefined) {
    return {
      type: "refused",
      error: new ProxyError("UNSUPPORTED", `${path} is not served by the kuik proxy`),
    };
  }
  if (!readOnly) return methodNotAllowed(method, path);
  const kind: RouteKind = match[2] === "blobs" ? "blob" : "manifest";
  const name = match[1];
  const reference = match[3];
  const digest = isDigest(reference);
  if (kind === "blob" && !digest) {
    return {
      type: "refused",
      error: new ProxyError("DIGEST_INVALID", `invalid blob digest ${JSON.stringify(reference)}`),
    };
  }
  if (!digest && !TAG_RE.test(reference)) {
    const what = reference.includes(":") ? "digest" : "tag";
    const code = what === "digest" ? "DIGEST_INVALID" : "TAG_INVALID";
    return {
      type: "refused",
      error: new ProxyError(code, `invalid manifest ${what} ${JSON.stringify(reference)}`),
    };
  }
  return { type: "content", kind, name, reference };
}

function methodNotAllowed(method: string, path: string): Route {
  const error = new ProxyError("UNSUPPORTED", `${method} ${path}: the kuik proxy is read-only (GET, HEAD)`, {
    statusCode: 405,
  });
  return { type: "refused", error, allow: ALLOWED_METHODS };
}
