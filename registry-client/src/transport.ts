/**
 * HTTP transport of the registry client: one undici dispatcher per TLS configuration (extra CAs, insecure
 * registries), HTTP(S)_PROXY / NO_PROXY support, timeouts, the mapping of undici errors to typed
 * {@link RegistryError}s, and bounded retries with exponential backoff.
 */
import { Agent, EnvHttpProxyAgent, buildConnector, type Dispatcher } from "undici";
import { rootCertificates } from "node:tls";
import type { AddressPolicy } from "./address-policy";
import { RegistryError, isRetryable } from "./errors";

/** TLS settings of one registry. */
export interface TlsOptions {
  /** Extra CA certificates (PEM) trusted in addition to the system's. */
  ca?: string[];
  /** Skip certificate verification. Only for registries the user listed as insecure. */
  insecureSkipVerify?: boolean;
}

/** Timeouts, in milliseconds. */
export interface TimeoutOptions {
  /** TCP + TLS connection establishment. */
  connectMs: number;
  /** From request sent to response headers received. */
  headersMs: number;
  /** Maximum idle time between two body chunks (not the whole transfer: a 10 GiB layer may take minutes). */
  bodyMs: number;
}

/** Corporate proxy settings; by default read from HTTP_PROXY / HTTPS_PROXY / NO_PROXY (and lower-case). */
export interface ProxyOptions {
  httpProxy?: string;
  httpsProxy?: string;
  noProxy?: string;
}

/** Retry policy for idempotent requests. */
export interface RetryOptions {
  /** Total attempts, first one included. */
  attempts: number;
  /** First backoff delay; doubled at each attempt, with ±20 % jitter. */
  baseDelayMs: number;
  /** Cap of one backoff delay, Retry-After included. */
  maxDelayMs: number;
}

export const DEFAULT_TIMEOUTS: TimeoutOptions = { connectMs: 10_000, headersMs: 30_000, bodyMs: 60_000 };
export const DEFAULT_RETRY: RetryOptions = { attempts: 4, baseDelayMs: 250, maxDelayMs: 10_000 };

/**
 * Build the dispatcher for one TLS configuration. With a `policy`, every direct connection goes through its
 * connector (the address is checked at connect time); connections to an HTTP(S)_PROXY are not checked (the proxy
 * reaches the origin, so the policy there is the proxy's), but NO_PROXY destinations are.
 */
export function createDispatcher(
  tls: TlsOptions,
  timeouts: TimeoutOptions,
  proxy?: ProxyOptions,
  policy?: AddressPolicy,
): Dispatcher {
  const connect = {
    timeout: timeouts.connectMs,
    // Passing `ca` replaces Node's bundled roots: keep them, so an extra CA adds trust rather than replacing it.
    ...(tls.ca && tls.ca.length > 0 ? { ca: [...rootCertificates, ...tls.ca] } : {}),
    ...(tls.insecureSkipVerify ? { rejectUnauthorized: false } : {}),
  };
  const agentOptions = {
    connect: policy ? policy.connector(buildConnector(connect)) : connect,
    headersTimeout: timeouts.headersMs,
    bodyTimeout: timeouts.bodyMs,
    keepAliveTimeout: 30_000,
    connections: 32,
  };
  const env = process.env;
  const httpProxy = proxy?.httpProxy ?? env.HTTP_PROXY ?? env.http_proxy;
  const httpsProxy = proxy?.httpsProxy ?? env.HTTPS_PROXY ?? env.https_proxy;
  if (!httpProxy && !httpsProxy) return new Agent(agentOptions);
  return new EnvHttpProxyAgent({
    ...agentOptions,
    requestTls: connect,
    ...(httpProxy ? { httpProxy } : {}),
    ...(httpsProxy ? { httpsProxy } : {}),
    ...(proxy?.noProxy !== undefined ? { noProxy: proxy.noProxy } : {}),
  });
}

const TIMEOUT_CODES: ReadonlySet<string> = new Set([
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
  "ETIMEDOUT",
]);

/** Whether an undici/socket error code means a timeout (connect, headers, idle body, or the kernel's). */
export function isTimeoutCode(code: string | undefined): boolean {
  return code !== undefined && TIMEOUT_CODES.has(code);
}

/** Map any error thrown by undici (or a stream) to a {@link RegistryError}. */
export function toRegistryError(err: unknown, registry: string, what: string): RegistryError {
  if (err instanceof RegistryError) return err;
  const e = err as { code?: string; name?: string; message?: string; cause?: { code?: string } };
  const code = e?.code ?? e?.cause?.code ?? "";
  if (e?.name === "AbortError" || code === "UND_ERR_ABORTED" || code === "ABORT_ERR") {
    return new RegistryError("ABORTED", `${what} on ${registry}: aborted`, { registry, cause: err });
  }
  if (TIMEOUT_CODES.has(code)) {
    return new RegistryError("UPSTREAM_TIMEOUT", `${what} on ${registry}: timed out (${code})`, {
      registry,
      cause: err,
    });
  }
  const reason = code || e?.message || String(err);
  return new RegistryError("UPSTREAM_UNREACHABLE", `${what} on ${registry}: ${reason}`, {
    registry,
    cause: err,
  });
}

/** Parse a Retry-After header (seconds or HTTP date) into milliseconds. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v.trim() === "") return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const date = Date.parse(v);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** The delay before retry number `attempt` (1-based), honouring the server's Retry-After when longer. */
export function backoffDelay(
  attempt: number,
  policy: RetryOptions,
  err: unknown,
  random = Math.random,
): number {
  const exp = policy.baseDelayMs * 2 ** (attempt - 1);
  const jittered = exp * (0.8 + 0.4 * random());
  const asked = err instanceof RegistryError ? (err.retryAfterMs ?? 0) : 0;
  return Math.min(policy.maxDelayMs, Math.max(jittered, asked));
}

/**
 * Run `attempt` until it succeeds, fails with a non-retryable error, or the policy's attempts are spent.
 * Only transport errors, 429 and 5xx are retried (see {@link isRetryable}).
 */
export async function withRetries<T>(
  policy: RetryOptions,
  attempt: (n: number) => Promise<T>,
  hooks: {
    signal?: AbortSignal;
    onRetry?: (err: RegistryError, attempt: number, delayMs: number) => void;
  } = {},
): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      if (!isRetryable(err) || hooks.signal?.aborted) throw err;
      if (n >= policy.attempts) throw (err as RegistryError).withRetriesSpent();
      const delay = backoffDelay(n, policy, err);
      hooks.onRetry?.(err as RegistryError, n, delay);
      await sleep(delay, hooks.signal);
    }
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }
    function onAbort(): void {
      clearTimeout(timer);
      reject(new RegistryError("ABORTED", "aborted while waiting to retry"));
    }
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
