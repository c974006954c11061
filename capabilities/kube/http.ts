/**
 * The watcher's REST transport to the Kubernetes API: ONE undici Agent for the whole process, built by the
 * composition root (watcher/runtime.ts) and injected into {@link KubeClient}.
 *
 * Why not KFC (`K8s`, re-exported by Pepr): kubernetes-fluent-client 3.11.6 builds a new KubeConfig and a new undici
 * Agent with a 600 s keep-alive for every API call (`k8sCfg` / `getHTTPSAgent` in its dist/fluent/utils.js). While
 * converging 2,000 Pods / 500 images that left 5,400 TLS sockets open and the watcher at 937 MiB
 * (bench/README.md, "convergence"). Here connections are bounded and reused.
 */
import { Agent } from "undici";
import type { KubeConnection } from "./config";
import { KubeApiError } from "./ports";

/** HTTP methods the watcher uses. */
export type KubeMethod = "GET" | "POST" | "PATCH" | "DELETE";

/** Content types of PATCH bodies. */
export const PATCH_TYPES = {
  apply: "application/apply-patch+yaml",
  json: "application/json-patch+json",
  merge: "application/merge-patch+json",
} as const;

/** One API request. */
export interface KubeRequest {
  method: KubeMethod;
  /** Absolute API path from {@link resourcePath}, without query. */
  path: string;
  query?: Readonly<Record<string, string>>;
  /** Sent as JSON (also for `apply-patch+yaml`: JSON is YAML). */
  body?: unknown;
  /** Content type of `body`; default `application/json`. */
  contentType?: string;
  /** Whether the caller needs the response body (parsed JSON); otherwise it is drained and dropped. */
  read?: boolean;
}

/** Sends API requests. Rejects with a {@link KubeApiError}: the HTTP status, or 0 when none was received. */
export interface KubeTransport {
  request<T = unknown>(req: KubeRequest): Promise<T>;
}

/** A resource collection or object. */
export interface ResourceRef {
  /** API group, `""` for core. */
  group: string;
  version: string;
  plural: string;
  namespace?: string;
  name?: string;
  subresource?: string;
}

/** The API path of `ref`: `/api/v1/namespaces/ns/pods/name`, `/apis/group/version/plural/name/status`. */
export function resourcePath(ref: ResourceRef): string {
  const parts = [ref.group === "" ? "/api" : `/apis/${ref.group}`, ref.version];
  if (ref.namespace !== undefined) parts.push("namespaces", encodeURIComponent(ref.namespace));
  parts.push(ref.plural);
  if (ref.name !== undefined) parts.push(encodeURIComponent(ref.name));
  if (ref.subresource !== undefined) parts.push(ref.subresource);
  return parts.join("/");
}

/** Path and query string of `req` under `basePath`. */
export function requestTarget(basePath: string, req: Pick<KubeRequest, "path" | "query">): string {
  const query = new URLSearchParams(req.query ?? {}).toString();
  return `${basePath}${req.path}${query ? `?${query}` : ""}`;
}

/** Longest response body drained when the caller does not need it (undici's default, 128 KiB, is too small). */
const MAX_DISCARDED_BODY = 4 * 1024 * 1024;
/** Longest error body read: a Status is a few hundred bytes; anything bigger is not one. */
const MAX_ERROR_BODY = 64 * 1024;

/** The {@link KubeApiError} of a failed response: the Status `message` when the body is one. */
export function errorFromResponse(status: number, body: string, what: string): KubeApiError {
  let message: string | undefined;
  try {
    const parsed = JSON.parse(body) as { kind?: unknown; message?: unknown };
    if (typeof parsed.message === "string" && parsed.message !== "") message = parsed.message;
  } catch {
    // not JSON (a proxy's HTML page…): the text itself, shortened
  }
  message ??= body.trim() === "" ? `HTTP ${status}` : `HTTP ${status}: ${body.trim().slice(0, 200)}`;
  return new KubeApiError(status, `${what}: ${message}`);
}

/** Settings of {@link KubeHttp}. */
export interface KubeHttpOptions {
  /** Maximum TCP connections to the API server (requests beyond queue); default 8. */
  connections?: number;
  /** Default `kuik`. */
  userAgent?: string;
  /** Idle keep-alive of a connection; default 30 s (the API server closes idle connections after 90 s or so). */
  keepAliveMs?: number;
  /** TCP + TLS connect; default 10 s. */
  connectTimeoutMs?: number;
  /** Response headers; default 60 s (a large list is encoded before the first byte). */
  headersTimeoutMs?: number;
  /** Between two body chunks; default 60 s. */
  bodyTimeoutMs?: number;
}

/** Counters of {@link KubeHttp}, for diagnostics and the connection-reuse test. */
export interface KubeHttpStats {
  requests: number;
  /** TCP connections opened so far. */
  connects: number;
}

/** {@link KubeTransport} over one undici Agent. Build one per process; {@link KubeHttp.close} at shutdown. */
export class KubeHttp implements KubeTransport {
  readonly #agent: Agent;
  readonly #connection: KubeConnection;
  readonly #userAgent: string;
  readonly #stats: KubeHttpStats = { requests: 0, connects: 0 };

  constructor(connection: KubeConnection, options: KubeHttpOptions = {}) {
    this.#connection = connection;
    this.#userAgent = options.userAgent ?? "kuik";
    const { ca, cert, key, rejectUnauthorized, servername } = connection.tls;
    this.#agent = new Agent({
      connections: options.connections ?? 8,
      keepAliveTimeout: options.keepAliveMs ?? 30_000,
      keepAliveMaxTimeout: options.keepAliveMs ?? 30_000,
      headersTimeout: options.headersTimeoutMs ?? 60_000,
      bodyTimeout: options.bodyTimeoutMs ?? 60_000,
      connect: {
        timeout: options.connectTimeoutMs ?? 10_000,
        rejectUnauthorized,
        ...(ca ? { ca } : {}),
        ...(cert ? { cert } : {}),
        ...(key ? { key } : {}),
        ...(servername ? { servername } : {}),
      },
    });
    this.#agent.on("connect", () => void this.#stats.connects++);
  }

  /** A copy of the counters. */
  stats(): KubeHttpStats {
    return { ...this.#stats };
  }

  async request<T = unknown>(req: KubeRequest): Promise<T> {
    const what = `${req.method} ${req.path}`;
    this.#stats.requests++;
    const headers: Record<string, string> = { accept: "application/json", "user-agent": this.#userAgent };
    let body: string | undefined;
    if (req.body !== undefined) {
      body = JSON.stringify(req.body);
      headers["content-type"] = req.contentType ?? "application/json";
    }
    let response;
    try {
      const authorization = await this.#connection.authorization();
      if (authorization !== undefined) headers.authorization = authorization;
      response = await this.#agent.request({
        origin: this.#connection.origin,
        path: requestTarget(this.#connection.basePath, req),
        method: req.method,
        headers,
        ...(body !== undefined ? { body } : {}),
      });
    } catch (err) {
      throw new KubeApiError(0, `${what}: ${err instanceof Error ? err.message : String(err)}`);
    }
    const { statusCode, body: stream } = response;
    if (statusCode < 200 || statusCode >= 300) {
      throw errorFromResponse(statusCode, await readAtMost(stream, MAX_ERROR_BODY), what);
    }
    try {
      if (req.read) return (await stream.json()) as T;
      // Drained rather than closed, so the connection is reused: any single object (etcd caps them at 1.5 MiB)
      // fits under the limit.
      await stream.dump({ limit: MAX_DISCARDED_BODY });
      return undefined as T;
    } catch (err) {
      throw new KubeApiError(0, `${what}: reading the response: ${String(err)}`);
    }
  }

  /** Closes the connections (in-flight requests finish first). */
  close(): Promise<void> {
    return this.#agent.close();
  }
}

/** Up to `limit` bytes of `stream` as text; the rest is not read (the connection is then dropped, not reused). */
async function readAtMost(stream: AsyncIterable<Buffer>, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of stream) {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= limit) break;
    }
  } catch {
    // a broken error body still leaves the status
  }
  return Buffer.concat(chunks).subarray(0, limit).toString("utf8");
}
