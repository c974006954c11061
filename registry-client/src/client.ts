/**
 * The registry client core: one authenticated, retried, redirect-following HTTP exchange with a registry
 * (`request`), on which the manifest and blob verbs ({@link ./manifests}, {@link ./blobs}) are built.
 */
import type { Readable } from "node:stream";
import { type Dispatcher } from "undici";
import type { AddressPolicy } from "./address-policy";
import { Authenticator, type CredentialsProvider } from "./auth";
import { mergeScopes, scopeForRepository } from "./auth-challenge";
import { RegistryError, isRegistryError, type OciErrorCode } from "./errors";
import {
  DEFAULT_RETRY,
  DEFAULT_TIMEOUTS,
  createDispatcher,
  parseRetryAfter,
  toRegistryError,
  withRetries,
  type ProxyOptions,
  type RetryOptions,
  type TimeoutOptions,
} from "./transport";

/** Per-registry connection settings, keyed by `host[:port]` in {@link RegistryClientOptions.hosts}. */
export interface RegistryHostOptions {
  /** Talk plain HTTP (e.g. an in-cluster cache registry). */
  plainHttp?: boolean;
  /** Skip TLS verification, and fall back to plain HTTP when the registry does not speak TLS (Docker's rule). */
  insecure?: boolean;
  /** Extra CA certificates (PEM) for this registry. */
  ca?: string[];
}

/** Something the client reports; the library itself never logs. */
export type RegistryEvent =
  | {
      type: "response";
      registry: string;
      method: string;
      path: string;
      statusCode: number;
      durationMs: number;
    }
  | { type: "retry"; registry: string; attempt: number; delayMs: number; code: string }
  | { type: "insecure-fallback"; registry: string };

/** Options of {@link RegistryClient}. */
export interface RegistryClientOptions {
  /** Per-registry settings; registries not listed use HTTPS with the system CAs (plus {@link defaultCa}). */
  hosts?: Record<string, RegistryHostOptions>;
  /** Extra CAs trusted for every registry (kuik's `rootCertificateAuthorities`). */
  defaultCa?: string[];
  /** Credentials to try per registry/repository, most specific first; anonymous when empty. */
  credentials?: CredentialsProvider;
  timeouts?: Partial<TimeoutOptions>;
  retry?: Partial<RetryOptions>;
  /** Corporate proxy; defaults to HTTP_PROXY / HTTPS_PROXY / NO_PROXY from the environment. */
  proxy?: ProxyOptions;
  userAgent?: string;
  /** Observability hook (log, count); must not throw. */
  onEvent?: (event: RegistryEvent) => void;
  /**
   * Where the client may connect, checked on the resolved address of every connection (registries, redirect
   * targets, token realms). Without one, any address is reached: set one wherever names come from untrusted input.
   */
  addressPolicy?: AddressPolicy;
  /** Connection pools kept at most, one per host (default 64); the least recently used is closed beyond. */
  maxHosts?: number;
}

/** Repository actions a request needs, for the token scope. */
export type Action = "pull" | "push" | "delete";

/** One HTTP exchange with a registry. */
export interface RequestSpec {
  registry: string;
  method: "GET" | "HEAD" | "PUT" | "POST" | "PATCH" | "DELETE";
  /** `/v2/...` path with query, or an absolute URL (upload locations). */
  path: string;
  /** Repository the request is about: picks credentials and the token scope. */
  repository?: string;
  actions?: Action[];
  /** Extra scopes, e.g. pull on the source repository of a cross-repository mount. */
  extraScopes?: string[];
  headers?: Record<string, string>;
  /** A Buffer is replayable (retries, 401 retry); a stream is sent once. */
  body?: Buffer | string | Readable;
  /** Statuses that count as success; anything else throws. */
  expect: number[];
  /** OCI code used for a 404 without an error body. */
  notFound?: OciErrorCode;
  signal?: AbortSignal;
  /**
   * Follow up to 3 redirects (GET/HEAD only): to https, or to plain http on a host configured `plainHttp` or
   * `insecure`; Authorization is sent only to the registry's own origin (scheme, host and port).
   */
  followRedirects?: boolean;
}

/** The response of {@link RegistryClient.request}: the body is an unread stream the caller must consume or dump. */
export interface RegistryResponse {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  body: Dispatcher.ResponseData["body"];
  /** The final URL, after redirects. */
  url: URL;
}

const MAX_REDIRECTS = 3;
const MAX_ERROR_BODY = 64 * 1024;
const DEFAULT_MAX_HOSTS = 64;

/**
 * A client for OCI distribution registries. Holds connection pools, the auth token cache and per-registry
 * settings; create one per process (or per set of settings) and {@link close} it when done.
 */
export class RegistryClient {
  readonly #options: RegistryClientOptions;
  readonly #timeouts: TimeoutOptions;
  readonly #retry: RetryOptions;
  /** Connection pools by host, least recently used first (see {@link RegistryClientOptions.maxHosts}). */
  readonly #dispatchers = new Map<string, Dispatcher>();
  readonly #plainHttpFallback = new Set<string>();
  readonly #auth: Authenticator;

  constructor(options: RegistryClientOptions = {}) {
    this.#options = options;
    this.#timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
    this.#retry = { ...DEFAULT_RETRY, ...options.retry };
    this.#auth = new Authenticator(options.credentials ?? (() => []), (url, init) =>
      this.#fetchToken(url, init),
    );
  }

  /** Close every connection pool. */
  async close(): Promise<void> {
    const all = [...this.#dispatchers.values()];
    this.#dispatchers.clear();
    await Promise.all(all.map(d => d.close()));
  }

  /** The base URL (`scheme://host`) used for a registry; Docker Hub's API lives at registry-1.docker.io. */
  baseUrl(registry: string): string {
    const host = this.#options.hosts?.[registry];
    const plain = host?.plainHttp === true || this.#plainHttpFallback.has(registry);
    return `${plain ? "http" : "https"}://${registry === "docker.io" ? "registry-1.docker.io" : registry}`;
  }

  /**
   * Send one request with authentication, retries (replayable bodies only: transport errors, 429, 5xx) and
   * redirects. Resolves once the headers of an expected status arrived; the body is left to the caller.
   */
  async request(spec: RequestSpec): Promise<RegistryResponse> {
    const replayable = spec.body === undefined || typeof spec.body === "string" || Buffer.isBuffer(spec.body);
    if (!replayable) return this.#sendWithFallback(spec);
    return withRetries(this.#retry, () => this.#sendWithFallback(spec), {
      ...(spec.signal ? { signal: spec.signal } : {}),
      onRetry: (err, attempt, delayMs) =>
        this.#emit({ type: "retry", registry: spec.registry, attempt, delayMs, code: err.code }),
    });
  }

  /** Like {@link request}, then reads a (small) body as a Buffer, refusing more than `maxBytes`. */
  async requestBuffer(
    spec: RequestSpec,
    maxBytes: number,
  ): Promise<{ response: RegistryResponse; bytes: Buffer }> {
    if (!canResend(spec)) throw new RegistryError("PROTOCOL_ERROR", "requestBuffer needs a replayable body");
    return withRetries(
      this.#retry,
      async () => {
        const response = await this.#sendWithFallback(spec);
        const bytes = await readLimited(response, maxBytes, spec.registry);
        return { response, bytes };
      },
      {
        ...(spec.signal ? { signal: spec.signal } : {}),
        onRetry: (err, attempt, delayMs) =>
          this.#emit({ type: "retry", registry: spec.registry, attempt, delayMs, code: err.code }),
      },
    );
  }

  async #sendWithFallback(spec: RequestSpec): Promise<RegistryResponse> {
    try {
      return await this.#sendAuthenticated(spec);
    } catch (err) {
      const host = this.#options.hosts?.[spec.registry];
      // A request that set out over TLS before a concurrent one found that this registry has none falls back too.
      const canFallBack = host?.insecure === true && isTlsFailure(err) && !isAbsolute(spec.path);
      if (!canFallBack) throw err;
      if (!this.#plainHttpFallback.has(spec.registry)) {
        this.#plainHttpFallback.add(spec.registry);
        this.#emit({ type: "insecure-fallback", registry: spec.registry });
      }
      return this.#sendAuthenticated(spec);
    }
  }

  /**
   * One request with each candidate credential in turn (bounded by the authenticator): a 401 is answered once
   * with a fresh Authorization for the same candidate, then a 401 or 403 moves on to the next candidate, so a
   * wrong credential under a more specific key never hides a working one under a less specific key. The candidate
   * that worked is tried first next time. Only a 401 of the registry's own origin is read as its challenge: one
   * served after a redirect to another origin is that origin's, and is never answered with the registry's
   * credentials.
   */
  async #sendAuthenticated(spec: RequestSpec): Promise<RegistryResponse> {
    const scope = scopeOf(spec);
    const { registry, repository, signal } = spec;
    const order = canResend(spec) ? this.#auth.candidateOrder(registry, repository) : [0];
    let lastError: unknown;
    for (const [n, candidate] of order.entries()) {
      const more = n + 1 < order.length;
      let response: RegistryResponse;
      try {
        // Token fetches are shared between callers (single-flight), so a caller's signal cannot cancel one: it
        // stops this caller's wait instead; the fetch itself stays bounded by the dispatcher's timeouts.
        let authorization = await untilAborted(
          this.#auth.authorization(registry, repository, scope, candidate),
          signal,
        );
        response = await this.#send(spec, authorization);
        if (response.statusCode === 401 && canResend(spec) && this.#isRegistryOrigin(spec, response.url)) {
          await response.body.dump();
          const challenge = response.headers["www-authenticate"]; // every header: Basic and Bearer may come apart
          authorization = await untilAborted(
            this.#auth.onUnauthorized(registry, repository, scope, challenge, candidate),
            signal,
          );
          response = await this.#send(spec, authorization);
        }
      } catch (err) {
        if (!more || !isRegistryError(err, "UNAUTHORIZED")) throw err;
        lastError = err;
        continue;
      }
      if (spec.expect.includes(response.statusCode)) {
        this.#auth.worked(registry, repository, candidate);
        return response;
      }
      const rejected = response.statusCode === 401 || response.statusCode === 403;
      if (!more || !rejected || !this.#isRegistryOrigin(spec, response.url)) {
        throw await errorFromResponse(spec, response);
      }
      await response.body.dump();
      lastError = undefined;
    }
    throw (
      lastError ?? new RegistryError("UNAUTHORIZED", `no credential accepted by ${registry}`, { registry })
    );
  }

  /** Whether `url` has the origin (scheme, host, port) of the registry's API, or of an absolute request path. */
  #isRegistryOrigin(spec: RequestSpec, url: URL): boolean {
    return url.origin === this.#startUrl(spec).origin;
  }

  /**
   * The first URL of a request. A registry name can be valid in a reference and still no valid URL host (`v1.0`
   * parses as a broken IPv4 address): that is the caller's bad input, not a crash.
   *
   * @throws {@link RegistryError} `INVALID_REFERENCE`.
   */
  #startUrl(spec: RequestSpec): URL {
    try {
      return isAbsolute(spec.path) ? new URL(spec.path) : new URL(spec.path, this.baseUrl(spec.registry));
    } catch (err) {
      throw new RegistryError("INVALID_REFERENCE", `${spec.registry}: not a valid registry host`, {
        registry: spec.registry,
        cause: err,
      });
    }
  }

  async #send(spec: RequestSpec, authorization: string | undefined): Promise<RegistryResponse> {
    let url = this.#startUrl(spec);
    const origin = url.origin;
    for (let hop = 0; ; hop++) {
      const headers: Record<string, string> = {
        "user-agent": this.#options.userAgent ?? "kuik-registry-client",
        ...spec.headers,
      };
      // Credentials go to the origin they were issued for only: never to another host or port, nor over plain
      // HTTP after an https → http redirect on the same host.
      if (authorization && url.origin === origin) headers.authorization = authorization;
      const response = await this.#dispatch(spec, url, headers);
      const location = headerValue(response.headers.location);
      const redirect = response.statusCode >= 300 && response.statusCode < 400 && response.statusCode !== 304;
      if (!redirect || !spec.followRedirects || location === undefined) return response;
      await response.body.dump();
      if (hop >= MAX_REDIRECTS) {
        throw new RegistryError("REDIRECT_REFUSED", `too many redirects from ${spec.registry}${spec.path}`, {
          registry: spec.registry,
        });
      }
      url = this.#checkedUrl(redirectUrl(location, url, spec.registry), spec.registry, "redirect");
    }
  }

  /**
   * A redirect target or token realm the client may use: https, or plain http to a host configured `plainHttp` or
   * `insecure` (where the address is checked is the connector's business, see {@link AddressPolicy}).
   *
   * @throws {@link RegistryError} `REDIRECT_REFUSED`.
   */
  #checkedUrl(url: URL, registry: string, what: "redirect" | "token realm"): URL {
    const host = this.#options.hosts?.[url.host];
    const plainAllowed = host?.plainHttp === true || host?.insecure === true;
    if (url.protocol === "https:" || (url.protocol === "http:" && plainAllowed)) return url;
    throw new RegistryError(
      "REDIRECT_REFUSED",
      `${registry}: ${what} to ${url.protocol}//${url.host} refused (https only, plain http only for insecure registries)`,
      { registry },
    );
  }

  async #dispatch(spec: RequestSpec, url: URL, headers: Record<string, string>): Promise<RegistryResponse> {
    const started = performance.now();
    let data: Dispatcher.ResponseData;
    try {
      data = await this.#dispatcherFor(url.host, spec.registry).request({
        origin: url.origin,
        path: url.pathname + url.search,
        method: spec.method,
        headers,
        body: spec.body ?? null,
        signal: spec.signal ?? null,
      });
    } catch (err) {
      throw toRegistryError(err, spec.registry, `${spec.method} ${url.pathname}`);
    }
    this.#emit({
      type: "response",
      registry: spec.registry,
      method: spec.method,
      path: url.pathname,
      statusCode: data.statusCode,
      durationMs: performance.now() - started,
    });
    return { statusCode: data.statusCode, headers: data.headers, body: data.body, url };
  }

  /**
   * The pool for a host; a registry's own settings apply to its API host (docker.io → registry-1.docker.io). Pools
   * are kept in least-recently-used order, at most {@link RegistryClientOptions.maxHosts}: any name an image or a
   * redirect brings gets a pool, and the oldest is closed (gracefully: its requests finish) past the bound.
   */
  #dispatcherFor(host: string, registry?: string): Dispatcher {
    let dispatcher = this.#dispatchers.get(host);
    if (dispatcher) {
      this.#dispatchers.delete(host);
    } else {
      const own = registry !== undefined && new URL(this.baseUrl(registry)).host === host;
      const settings = this.#options.hosts?.[own ? registry : host];
      const ca = [...(this.#options.defaultCa ?? []), ...(settings?.ca ?? [])];
      dispatcher = createDispatcher(
        { ca, insecureSkipVerify: settings?.insecure === true },
        this.#timeouts,
        this.#options.proxy,
        this.#options.addressPolicy,
      );
      const max = Math.max(1, this.#options.maxHosts ?? DEFAULT_MAX_HOSTS);
      for (const [oldest, pool] of this.#dispatchers) {
        if (this.#dispatchers.size < max) break;
        this.#dispatchers.delete(oldest);
        pool.close().catch(() => undefined);
      }
    }
    this.#dispatchers.set(host, dispatcher);
    return dispatcher;
  }

  /** Connection pools currently kept (bounded by {@link RegistryClientOptions.maxHosts}). */
  get pools(): number {
    return this.#dispatchers.size;
  }

  async #fetchToken(
    url: URL,
    init: { method: "GET" | "POST"; headers: Record<string, string>; body?: string },
  ): Promise<{ statusCode: number; body: string }> {
    // No retry loop here: a token fetch runs inside request()'s, which retries the 429/5xx thrown below.
    {
      this.#checkedUrl(url, url.host, "token realm");
      let data: Dispatcher.ResponseData;
      try {
        data = await this.#dispatcherFor(url.host).request({
          origin: url.origin,
          path: url.pathname + url.search,
          method: init.method,
          headers: { "user-agent": this.#options.userAgent ?? "kuik-registry-client", ...init.headers },
          body: init.body ?? null,
        });
      } catch (err) {
        throw toRegistryError(err, url.host, "token request");
      }
      const body = (
        await readLimited({ body: data.body, headers: data.headers }, MAX_ERROR_BODY * 4, url.host)
      ).toString("utf8");
      if (data.statusCode === 429 || data.statusCode >= 500) {
        throw new RegistryError("AUTH_FAILED", `token server ${url.host} answered HTTP ${data.statusCode}`, {
          registry: url.host,
          statusCode: data.statusCode,
          ...retryAfter(data.headers),
        });
      }
      return { statusCode: data.statusCode, body };
    }
  }

  #emit(event: RegistryEvent): void {
    try {
      this.#options.onEvent?.(event);
    } catch {
      // An observer's failure must never break a pull.
    }
  }
}

/** The token scope of a request: deduplicated, in a stable order, so token cache keys stay stable. */
function scopeOf(spec: RequestSpec): string | undefined {
  const [first = "pull", ...rest] = spec.actions ?? [];
  const own = spec.repository ? scopeForRepository(spec.repository, [first, ...rest]) : undefined;
  const scopes = mergeScopes(...(spec.extraScopes ?? []), own);
  return scopes.length > 0 ? scopes.join(" ") : undefined;
}

/** The target of a redirect; an unparsable Location is the registry's protocol error. */
function redirectUrl(location: string, base: URL, registry: string): URL {
  try {
    return new URL(location, base);
  } catch (err) {
    throw new RegistryError("PROTOCOL_ERROR", `${registry}: invalid redirect Location`, {
      registry,
      cause: err,
    });
  }
}

function canResend(spec: RequestSpec): boolean {
  return spec.body === undefined || typeof spec.body === "string" || Buffer.isBuffer(spec.body);
}

function isAbsolute(path: string): boolean {
  return /^https?:\/\//i.test(path);
}

function isTlsFailure(err: unknown): boolean {
  if (!(err instanceof RegistryError) || err.code !== "UPSTREAM_UNREACHABLE") return false;
  const cause = err.cause as { code?: string; message?: string } | undefined;
  const text = `${cause?.code ?? ""} ${cause?.message ?? ""}`;
  // Only a TLS handshake failure means "no TLS here": a transient reset must not downgrade to HTTP for good.
  return /SSL|TLS|EPROTO|wrong version/i.test(text);
}

/** First value of a header that may be repeated. */
export function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function retryAfter(headers: Record<string, string | string[] | undefined>): { retryAfterMs?: number } {
  const ms = parseRetryAfter(headers["retry-after"]);
  return ms === undefined ? {} : { retryAfterMs: ms };
}

/** `work`, or an ABORTED rejection as soon as `signal` aborts (`work` itself goes on: others may await it). */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  if (signal.aborted) return Promise.reject(new RegistryError("ABORTED", "aborted"));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new RegistryError("ABORTED", "aborted while waiting for a token"));
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(
      value => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}

/** Read a body into memory, failing once it exceeds `maxBytes` (manifests, error bodies, tokens). */
async function readLimited(
  response: Pick<RegistryResponse, "body" | "headers">,
  maxBytes: number,
  registry: string,
): Promise<Buffer> {
  const declared = Number(headerValue(response.headers["content-length"]) ?? NaN);
  if (declared > maxBytes) {
    await response.body.dump();
    throw new RegistryError(
      "MANIFEST_TOO_LARGE",
      `${registry} sent ${declared} bytes, more than the ${maxBytes} accepted`,
      {
        registry,
      },
    );
  }
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of response.body) {
      total += (chunk as Buffer).length;
      if (total > maxBytes) {
        response.body.destroy();
        throw new RegistryError(
          "MANIFEST_TOO_LARGE",
          `${registry} sent more than the ${maxBytes} bytes accepted`,
          {
            registry,
          },
        );
      }
      chunks.push(chunk as Buffer);
    }
  } catch (err) {
    throw toRegistryError(err, registry, "reading response body");
  }
  return Buffer.concat(chunks);
}

async function errorFromResponse(spec: RequestSpec, response: RegistryResponse): Promise<RegistryError> {
  const { statusCode } = response;
  let text = "";
  try {
    text =
      spec.method === "HEAD"
        ? ""
        : (await readLimited(response, MAX_ERROR_BODY, spec.registry)).toString("utf8");
  } catch {
    text = "";
  }
  if (spec.method === "HEAD") await response.body.dump().catch(() => undefined);
  const oci = parseOciError(text);
  const code = oci?.code ?? defaultCode(statusCode, spec.notFound);
  const what = `${spec.method} ${spec.registry}${isAbsolute(spec.path) ? new URL(spec.path).pathname : spec.path.split("?")[0]}`;
  const message = `${what}: HTTP ${statusCode} ${code}${oci?.message ? `: ${oci.message}` : ""}`;
  return new RegistryError(code, message, {
    registry: spec.registry,
    statusCode,
    detail: oci?.detail,
    ...retryAfter(response.headers),
  });
}

function defaultCode(statusCode: number, notFound: OciErrorCode | undefined): RegistryError["code"] {
  if (statusCode === 401) return "UNAUTHORIZED";
  if (statusCode === 403) return "DENIED";
  if (statusCode === 404) return notFound ?? "NAME_UNKNOWN";
  if (statusCode === 429) return "TOOMANYREQUESTS";
  return "HTTP_ERROR";
}

const OCI_CODES = new Set<string>([
  "BLOB_UNKNOWN",
  "BLOB_UPLOAD_INVALID",
  "BLOB_UPLOAD_UNKNOWN",
  "DIGEST_INVALID",
  "MANIFEST_BLOB_UNKNOWN",
  "MANIFEST_INVALID",
  "MANIFEST_UNKNOWN",
  "NAME_INVALID",
  "NAME_UNKNOWN",
  "SIZE_INVALID",
  "UNAUTHORIZED",
  "DENIED",
  "UNSUPPORTED",
  "TOOMANYREQUESTS",
]);

/** Parse an OCI error body `{"errors":[{"code","message","detail"}]}`; undefined when it is not one. */
export function parseOciError(
  text: string,
): { code: OciErrorCode; message: string; detail: unknown } | undefined {
  try {
    const parsed = JSON.parse(text) as { errors?: { code?: unknown; message?: unknown; detail?: unknown }[] };
    const first = parsed.errors?.[0];
    if (!first || typeof first.code !== "string" || !OCI_CODES.has(first.code)) return undefined;
    return {
      code: first.code as OciErrorCode,
      message: typeof first.message === "string" ? first.message : "",
      detail: first.detail,
    };
  } catch {
    return undefined;
  }
}
