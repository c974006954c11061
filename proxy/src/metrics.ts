/**
 * The proxy's Prometheus metrics, on a private prom-client Registry (never the global one, so tests can build
 * as many proxies as they like in one process). Callers use the typed recorders, never the metric objects.
 * Labels are low-cardinality: registry, kind, status, source — never repository, tag or digest. The registry
 * comes from the request path, which any client writes: configured and well-known registries keep their name, the
 * first {@link MAX_REGISTRY_LABELS} others too, and every later one is counted as `other`.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { RouteKind } from "./routes";

/** Who answered a request: the cache registry, the origin, or the proxy itself (errors, `/v2/`). */
export type Source = "cache" | "origin" | "proxy";

/** Why a request was not served from the cache. */
export type FallbackReason = "miss" | "error" | "timeout" | "breaker_open";

/** One finished registry request. */
export interface RequestRecord {
  /** Origin registry (`docker.io`, `myreg:5000`); `""` when the name could not be decoded. */
  registry: string;
  kind: RouteKind | "ping" | "other";
  statusCode: number;
  source: Source;
}

/** Registries without their own label: past {@link MAX_REGISTRY_LABELS}, and requests refused before a name. */
export const OTHER_REGISTRY = "other";
/** Distinct unconfigured registries that get their own label value. */
export const MAX_REGISTRY_LABELS = 32;
/** Public registries that always get their own label value. */
const WELL_KNOWN_REGISTRIES = [
  "docker.io",
  "ghcr.io",
  "quay.io",
  "registry.k8s.io",
  "gcr.io",
  "mcr.microsoft.com",
  "public.ecr.aws",
];

/** Options of {@link createMetrics}. */
export interface MetricsOptions {
  version: string;
  /** Register Node.js process metrics (off in tests). */
  defaultMetrics?: boolean;
  /** Registries named in the configuration: always their own `registry` label value. */
  knownRegistries?: readonly string[];
}

/** Typed recorders over a private registry. */
export interface ProxyMetrics {
  readonly registry: Registry;
  requestStarted(): void;
  requestFinished(record: RequestRecord): void;
  /** Time from sending the request upstream to its response headers. */
  upstreamLatency(upstream: "cache" | "origin", kind: RouteKind, seconds: number): void;
  bytesServed(source: Source, kind: RouteKind, bytes: number): void;
  cacheFallback(reason: FallbackReason): void;
  cacheUp(up: boolean): void;
  breakerTransition(state: string): void;
  originRetry(registry: string): void;
  credentialsReload(result: "success" | "error", entries?: number): void;
  /** A request refused because too many were being served. */
  requestRejected(): void;
}

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** Builds the metrics of one proxy instance; `defaultMetrics` adds process/Node.js metrics (off in tests). */
export function createMetrics(options: MetricsOptions): ProxyMetrics {
  const registry = new Registry();
  const registers = [registry];
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
  new Gauge({
    name: "kuik_proxy_build_info",
    help: "Build information of the kuik proxy (constant 1)",
    labelNames: ["version", "node_version"],
    registers,
  }).set({ version: options.version, node_version: process.versions.node }, 1);
  const m = { ...requestMetrics(registers), ...upstreamMetrics(registers) };
  const label = registryLabeller([...WELL_KNOWN_REGISTRIES, ...(options.knownRegistries ?? [])]);
  return {
    registry,
    requestStarted: () => m.inflight.inc(),
    requestFinished(r) {
      m.inflight.dec();
      const status = String(r.statusCode);
      const registry = label(r.registry);
      m.requests.inc({ registry, kind: r.kind, status, source: r.source });
      if (r.kind === "manifest" || r.kind === "blob") {
        m.legacy.inc({ registry, statusCode: status, cacheHit: String(r.source === "cache") });
      }
    },
    upstreamLatency: (upstream, kind, seconds) => m.latency.observe({ upstream, kind }, seconds),
    bytesServed: (source, kind, n) => {
      if (n > 0) m.bytes.inc({ source, kind }, n);
    },
    cacheFallback: reason => m.fallbacks.inc({ reason }),
    cacheUp: up => m.cacheUp.set(up ? 1 : 0),
    breakerTransition: state => m.transitions.inc({ state }),
    originRetry: r => m.retries.inc({ registry: label(r) }),
    requestRejected: () => m.rejected.inc(),
    credentialsReload(result, n) {
      m.reloads.inc({ result });
      if (n !== undefined) m.entries.set(n);
    },
  };
}

/**
 * The `registry` label of a registry: its name when known or among the first {@link MAX_REGISTRY_LABELS} others,
 * else {@link OTHER_REGISTRY}; `""` (no name: ping, refusals) stays `""`.
 */
function registryLabeller(known: readonly string[]): (registry: string) => string {
  const named = new Set(known);
  let others = 0;
  return registry => {
    if (registry === "" || named.has(registry)) return registry;
    if (others >= MAX_REGISTRY_LABELS) return OTHER_REGISTRY;
    others++;
    named.add(registry);
    return registry;
  };
}

/** The request metrics: counts (kuik's and kuik v1's), in flight, upstream latency, bytes served. */
function requestMetrics(registers: Registry[]) {
  const requests = new Counter({
    name: "kuik_proxy_requests_total",
    help: "Registry API requests answered, by origin registry, kind, HTTP status and source",
    labelNames: ["registry", "kind", "status", "source"],
    registers,
  });
  const legacy = new Counter({
    name: "kube_image_keeper_proxy_http_requests_total",
    help: "kuik v1 compatible: manifest and blob requests by origin registry, status and cache hit",
    labelNames: ["registry", "statusCode", "cacheHit"],
    registers,
  });
  const inflight = new Gauge({
    name: "kuik_proxy_inflight_requests",
    help: "Requests being served",
    registers,
  });
  const latency = new Histogram({
    name: "kuik_proxy_upstream_duration_seconds",
    help: "Time from sending a request upstream to its response headers (auth and retries included)",
    labelNames: ["upstream", "kind"],
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const bytes = new Counter({
    name: "kuik_proxy_response_bytes_total",
    help: "Body bytes sent to clients, by source and kind",
    labelNames: ["source", "kind"],
    registers,
  });
  const rejected = new Counter({
    name: "kuik_proxy_rejected_requests_total",
    help: "Requests answered 503 because --max-concurrent-requests were being served",
    registers,
  });
  return { requests, legacy, inflight, latency, bytes, rejected };
}

/** The cache, breaker, origin-retry and credentials metrics. */
function upstreamMetrics(registers: Registry[]) {
  const fallbacks = new Counter({
    name: "kuik_proxy_cache_fallbacks_total",
    help: "Requests served from the origin instead of the cache, by reason",
    labelNames: ["reason"],
    registers,
  });
  const cacheUp = new Gauge({
    name: "kuik_proxy_cache_up",
    help: "1 while the cache registry is used (breaker closed), 0 while it is avoided",
    registers,
  });
  cacheUp.set(1);
  const transitions = new Counter({
    name: "kuik_proxy_cache_breaker_transitions_total",
    help: "State changes of the cache registry circuit breaker, by new state",
    labelNames: ["state"],
    registers,
  });
  const retries = new Counter({
    name: "kuik_proxy_origin_retries_total",
    help: "Origin requests retried before the first byte, by registry",
    labelNames: ["registry"],
    registers,
  });
  const reloads = new Counter({
    name: "kuik_proxy_credentials_reloads_total",
    help: "Loads of the credentials file, by result",
    labelNames: ["result"],
    registers,
  });
  const entries = new Gauge({
    name: "kuik_proxy_credentials_entries",
    help: "Credential entries loaded from the credentials file",
    registers,
  });
  return { fallbacks, cacheUp, transitions, retries, reloads, entries };
}
