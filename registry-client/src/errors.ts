/**
 * Typed errors of the registry client. Every failure carries a stable `code`: the OCI distribution error code
 * the registry sent (MANIFEST_UNKNOWN, UNAUTHORIZED, …) or one of ours for transport and validation failures.
 */

/** Error codes defined by the OCI distribution specification (plus Docker's TOOMANYREQUESTS). */
export type OciErrorCode =
  | "BLOB_UNKNOWN"
  | "BLOB_UPLOAD_INVALID"
  | "BLOB_UPLOAD_UNKNOWN"
  | "DIGEST_INVALID"
  | "MANIFEST_BLOB_UNKNOWN"
  | "MANIFEST_INVALID"
  | "MANIFEST_UNKNOWN"
  | "NAME_INVALID"
  | "NAME_UNKNOWN"
  | "SIZE_INVALID"
  | "UNAUTHORIZED"
  | "DENIED"
  | "UNSUPPORTED"
  | "TOOMANYREQUESTS";

/** Codes for failures that are not an OCI error body. */
export type ClientErrorCode =
  /** The image reference does not follow the distribution reference grammar. */
  | "INVALID_REFERENCE"
  /** A pull secret is malformed (never carries the credential itself). */
  | "INVALID_SECRET"
  /** A WWW-Authenticate challenge could not be understood, or the token server misbehaved. */
  | "AUTH_FAILED"
  /** Content did not hash to the digest it was announced with. */
  | "DIGEST_MISMATCH"
  /** A manifest media type we refuse (schema 1) or do not know. */
  | "UNSUPPORTED_MEDIA_TYPE"
  /** A manifest larger than the client accepts. */
  | "MANIFEST_TOO_LARGE"
  /** Connect, headers or body timeout. */
  | "UPSTREAM_TIMEOUT"
  /** Connection refused, reset, DNS failure, TLS failure… */
  | "UPSTREAM_UNREACHABLE"
  /** The registry answered something the protocol does not allow (e.g. a missing Location header). */
  | "PROTOCOL_ERROR"
  /** An HTTP error status with no OCI error body. */
  | "HTTP_ERROR"
  /** The operation was aborted by the caller's AbortSignal. */
  | "ABORTED"
  /** The address a host resolves to is refused by the client's `AddressPolicy` (never retried). */
  | "ADDRESS_REFUSED"
  /** A redirect or token realm the client will not follow: plain HTTP, too many hops. */
  | "REDIRECT_REFUSED";

export type RegistryErrorCode = OciErrorCode | ClientErrorCode;

const BRAND = Symbol.for("kuik.registry-client.RegistryError");

/** Options of {@link RegistryError}. */
export interface RegistryErrorOptions {
  /** HTTP status of the response that caused the error, if any. */
  statusCode?: number;
  /** Registry host (`host[:port]`) the error comes from. */
  registry?: string;
  /** The underlying error. */
  cause?: unknown;
  /** Server-provided details (OCI error `detail`), never credentials. */
  detail?: unknown;
  /** For 429 and 503: how long the server asked us to wait (Retry-After), in milliseconds. */
  retryAfterMs?: number;
}

/** The one error class thrown by registry-client. Match on {@link RegistryError.code}, not on the message. */
export class RegistryError extends Error {
  readonly code: RegistryErrorCode;
  readonly statusCode: number | undefined;
  readonly registry: string | undefined;
  readonly detail: unknown;
  readonly retryAfterMs: number | undefined;
  #retriesSpent = false;

  constructor(code: RegistryErrorCode, message: string, options: RegistryErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "RegistryError";
    this.code = code;
    this.statusCode = options.statusCode;
    this.registry = options.registry;
    this.detail = options.detail;
    this.retryAfterMs = options.retryAfterMs;
  }

  /**
   * True once a retry loop gave up on this error because its attempts were spent: an enclosing loop must not retry
   * it again (nested loops would multiply the attempts, e.g. 4 × 4 calls for one failing blob GET).
   */
  get retriesSpent(): boolean {
    return this.#retriesSpent;
  }

  /**
   * A copy of this error marked as having exhausted a retry loop (see {@link RegistryError.retriesSpent}), the
   * original as its cause. A copy, not a mark on this one: an error can be shared (a single-flight token fetch
   * rejects every waiter with the same object), and another waiter's own retries must not end with this one's.
   */
  withRetriesSpent(): RegistryError {
    const copy = new RegistryError(this.code, this.message, {
      statusCode: this.statusCode,
      registry: this.registry,
      detail: this.detail,
      retryAfterMs: this.retryAfterMs,
      cause: this,
    });
    copy.#retriesSpent = true;
    return copy;
  }

  get [BRAND](): true {
    return true;
  }

  // instanceof keeps working across duplicate copies of this module (bundles), as undici's errors do.
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }
}

/** True when `e` is a {@link RegistryError}, optionally with one of the given codes. */
export function isRegistryError(e: unknown, ...codes: RegistryErrorCode[]): e is RegistryError {
  return e instanceof RegistryError && (codes.length === 0 || codes.includes(e.code));
}

/**
 * Whether an error is worth retrying: transport failures, 429 and 5xx — never other 4xx, and never an error an inner
 * retry loop already gave up on ({@link RegistryError.retriesSpent}).
 */
export function isRetryable(e: unknown): boolean {
  if (!(e instanceof RegistryError) || e.retriesSpent) return false;
  if (e.code === "UPSTREAM_TIMEOUT" || e.code === "UPSTREAM_UNREACHABLE" || e.code === "TOOMANYREQUESTS")
    return true;
  return e.statusCode !== undefined && (e.statusCode === 429 || e.statusCode >= 500);
}
