/**
 * The proxy's error taxonomy: one class with a stable `code` (OCI distribution codes where one fits, ours for
 * transport and configuration failures), the HTTP status it maps to, and the OCI error body written to clients.
 */
import type { ServerResponse } from "node:http";
import { isRegistryError } from "../../registry-client/src/errors";

/** Stable codes of {@link ProxyError}; the first group is sent to clients in OCI error bodies. */
export type ProxyErrorCode =
  /** `<name>` is not a valid (rewritten) repository name. */
  | "NAME_INVALID"
  /** The blob or manifest digest is malformed. */
  | "DIGEST_INVALID"
  /** The manifest reference is neither a tag nor a digest. */
  | "TAG_INVALID"
  /** A route this read-only proxy does not serve (catalog, tags list, uploads…). */
  | "UNSUPPORTED"
  /** The origin could not be reached (connection refused or reset, DNS, TLS). */
  | "UPSTREAM_UNREACHABLE"
  /** The origin did not answer in time. */
  | "UPSTREAM_TIMEOUT"
  /** The origin answered something unusable. */
  | "UPSTREAM_ERROR"
  /** Invalid flags or environment (startup only). */
  | "CONFIG_INVALID"
  /** A listen address could not be bound. */
  | "LISTEN_FAILED";

const BRAND = Symbol.for("kuik.proxy.ProxyError");

/** The one error class of the proxy. Match on {@link ProxyError.code}, never on the message. */
export class ProxyError extends Error {
  readonly code: ProxyErrorCode;
  /** HTTP status sent to the client for this error. */
  readonly statusCode: number;

  constructor(code: ProxyErrorCode, message: string, options: { statusCode?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ProxyError";
    this.code = code;
    this.statusCode = options.statusCode ?? DEFAULT_STATUS[code];
  }

  get [BRAND](): true {
    return true;
  }

  // instanceof survives duplicate module copies (bundles, test loaders), as RegistryError's does.
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }
}

const DEFAULT_STATUS: Readonly<Record<ProxyErrorCode, number>> = {
  NAME_INVALID: 400,
  DIGEST_INVALID: 400,
  TAG_INVALID: 400,
  UNSUPPORTED: 404,
  UPSTREAM_UNREACHABLE: 502,
  UPSTREAM_TIMEOUT: 504,
  UPSTREAM_ERROR: 502,
  CONFIG_INVALID: 500,
  LISTEN_FAILED: 500,
};

/** True when `e` is a {@link ProxyError}, optionally with one of the given codes. */
export function isProxyError(e: unknown, ...codes: ProxyErrorCode[]): e is ProxyError {
  return e instanceof ProxyError && (codes.length === 0 || codes.includes(e.code));
}

/** What a client is told about a failure: status, code and message of the OCI error body. */
export interface ClientError {
  statusCode: number;
  code: string;
  message: string;
  /** Headers worth passing on (Retry-After of a 429/503). */
  headers?: Record<string, string>;
}

/**
 * Maps any failure of an origin exchange to what the client sees. The origin's own 4xx/5xx keep their status
 * and OCI code (404 MANIFEST_UNKNOWN stays 404 MANIFEST_UNKNOWN); transport failures become 502/504; an origin
 * address the policy refuses is 403 DENIED. The message is generic per code: the client may be an attacker
 * probing the network through the proxy, so it never learns an upstream address, port, errno or upstream
 * message (a port scanner would read "ECONNREFUSED" against "timed out"). The details go to the request's log line.
 */
export function clientErrorOf(err: unknown): ClientError {
  if (err instanceof ProxyError) return { statusCode: err.statusCode, code: err.code, message: err.message };
  if (isRegistryError(err)) {
    const retryAfter =
      err.retryAfterMs === undefined ? undefined : String(Math.ceil(err.retryAfterMs / 1000));
    const headers = retryAfter === undefined ? {} : { headers: { "retry-after": retryAfter } };
    if (err.statusCode !== undefined && err.statusCode >= 400) {
      const message = `origin registry answered HTTP ${err.statusCode} ${err.code}`;
      return { statusCode: err.statusCode, code: err.code, message, ...headers };
    }
    const generic = GENERIC[err.code];
    if (generic) return { ...generic };
    return { statusCode: 502, code: err.code, message: "origin registry failed" };
  }
  return { statusCode: 500, code: "UPSTREAM_ERROR", message: "internal error" };
}

/** What the client is told for registry-client failures without an HTTP status. */
const GENERIC: Readonly<Partial<Record<string, ClientError>>> = {
  UPSTREAM_TIMEOUT: { statusCode: 504, code: "UPSTREAM_TIMEOUT", message: "origin registry timed out" },
  UPSTREAM_UNREACHABLE: {
    statusCode: 502,
    code: "UPSTREAM_UNREACHABLE",
    message: "origin registry unreachable",
  },
  UNAUTHORIZED: { statusCode: 401, code: "UNAUTHORIZED", message: "origin registry refused the credentials" },
  ADDRESS_REFUSED: {
    statusCode: 403,
    code: "DENIED",
    message: "origin registry address not allowed by the kuik proxy (see its allowed origins)",
  },
  INVALID_REFERENCE: { statusCode: 400, code: "NAME_INVALID", message: "invalid origin registry name" },
  REDIRECT_REFUSED: {
    statusCode: 502,
    code: "UPSTREAM_ERROR",
    message: "origin registry redirected to a location the kuik proxy does not follow",
  },
};

/** The OCI distribution error body `{"errors":[{code,message}]}`. */
export function ociErrorBody(code: string, message: string): string {
  return JSON.stringify({ errors: [{ code, message }] });
}

/**
 * Answers with an OCI error (no body for HEAD, as registries do). Only valid before anything was written; after
 * the first byte an error must destroy the response instead (see relay.ts).
 */
export function sendError(
  res: ServerResponse,
  error: ClientError,
  extraHeaders: Record<string, string> = {},
): void {
  const body = ociErrorBody(error.code, error.message);
  res.writeHead(error.statusCode, {
    ...extraHeaders,
    ...error.headers,
    "content-type": "application/json; charset=utf-8",
    "content-length": String(Buffer.byteLength(body)),
  });
  res.end(body);
}
