/**
 * Production wiring: turns a {@link ProxyConfig} into the proxy's parts (cache dispatcher and breaker, origin
 * RegistryClient with the credentials file, metrics, servers). The only I/O here is reading the CA files, which
 * fails startup as kuik v1 did with an unreadable `-root-certificate-authorities` file.
 */
import { readFileSync } from "node:fs";
import { rootCertificates } from "node:tls";
import type { Logger } from "pino";
import { Agent, type Dispatcher } from "undici";
import { AddressPolicy, type AddressPolicyOptions } from "../../registry-client/src/address-policy";
import { RegistryClient, type RegistryHostOptions } from "../../registry-client/src/client";
import { CircuitBreaker } from "./breaker";
import { CacheUpstream } from "./cache";
import type { ProxyConfig } from "./config";
import { CredentialStore } from "./credentials";
import { ProxyError } from "./errors";
import { GcPacer } from "./gc-pacer";
import { createMetrics, type ProxyMetrics } from "./metrics";
import { OriginUpstream } from "./origin";
import { createProxyServer, type ProxyServer } from "./server";

/** Bytes streamed between two paced scavenges (gc-pacer.ts): 4 MiB measured best, 2–8 MiB all help. */
const GC_PACE_BYTES = 4 * 1024 * 1024;

/** A wired proxy: its server plus what must be closed with it. */
export interface ProxyRuntime {
  readonly server: ProxyServer;
  readonly metrics: ProxyMetrics;
  readonly breaker: CircuitBreaker;
  /** Whether streaming paces minor GCs (Node started with --expose-gc, see gc-pacer.ts). */
  readonly gcPacing: boolean;
  /** Binds the listeners and starts watching the credentials file. */
  start(): Promise<void>;
  /** Graceful shutdown (see {@link ProxyServer.shutdown}), then closes upstream connections and watchers. */
  close(timeoutMs?: number): Promise<{ interrupted: number }>;
}

/** Options of {@link buildProxy} that are not configuration. */
export interface BuildOptions {
  version: string;
  /** Register Node.js process metrics (default true; tests building many proxies turn it off). */
  defaultMetrics?: boolean;
  /** Test hooks of the origins' address policy (a fake resolver, a stand-in dialler, a decision counter). */
  addressPolicy?: Pick<AddressPolicyOptions, "resolve" | "onDecision" | "connectVia">;
}

/** Wires a proxy from its configuration. Nothing listens or watches until `start()`. */
export function buildProxy(config: ProxyConfig, log: Logger, options: BuildOptions): ProxyRuntime {
  const metrics = createMetrics({
    version: options.version,
    defaultMetrics: options.defaultMetrics ?? true,
    knownRegistries: configuredRegistries(config),
  });
  const breaker = createBreaker(config, metrics, log);
  const rootCas = config.rootCaFiles.map(readPem);
  const pacer = GcPacer.fromGlobal(GC_PACE_BYTES);
  const cacheDispatcher = createCacheDispatcher(config, rootCas);
  const cache = new CacheUpstream({
    baseUrl: config.cacheRegistry,
    dispatcher: cacheDispatcher,
    headersTimeoutMs: config.cacheTimeouts.headersMs,
    bodyTimeoutMs: config.cacheTimeouts.bodyMs,
    pacer,
  });
  const credentials =
    config.credentialsFile === undefined
      ? undefined
      : new CredentialStore({
          file: config.credentialsFile,
          pollMs: config.credentialsPollMs,
          log,
          onReload: (result, n) => metrics.credentialsReload(result, n),
        });
  const policy = new AddressPolicy({
    ...options.addressPolicy,
    // The cache registry is in the cluster by design: always allowed, by name.
    allow: [...config.allowedOrigins, config.cacheRegistry.host],
  });
  const client = createOriginClient(config, rootCas, credentials, metrics, log, options.version, policy);
  const server = createProxyServer({
    config,
    log,
    metrics,
    cache,
    origin: new OriginUpstream(client, pacer),
    breaker,
  });
  return {
    server,
    metrics,
    breaker,
    gcPacing: pacer.active,
    async start() {
      credentials?.start();
      await server.start();
    },
    async close(timeoutMs) {
      const result = await server.shutdown(timeoutMs);
      credentials?.stop();
      await Promise.allSettled([client.close(), cacheDispatcher.close()]);
      return result;
    },
  };
}

/** The cache registry's circuit breaker, reporting its state in metrics and logs. */
function createBreaker(config: ProxyConfig, metrics: ProxyMetrics, log: Logger): CircuitBreaker {
  return new CircuitBreaker({
    ...config.breaker,
    onChange(state, previous) {
      metrics.cacheUp(state === "closed");
      metrics.breakerTransition(state);
      const entry = { cache: config.cacheRegistry.origin, state, previous };
      if (state === "open") log.warn(entry, "cache registry failing; serving from origins");
      else log.info(entry, "cache registry breaker changed");
    },
  });
}

/** The origins' RegistryClient: TLS per host, credentials from the file, bounded retries counted in metrics. */
function createOriginClient(
  config: ProxyConfig,
  rootCas: string[],
  credentials: CredentialStore | undefined,
  metrics: ProxyMetrics,
  log: Logger,
  version: string,
  addressPolicy: AddressPolicy,
): RegistryClient {
  return new RegistryClient({
    addressPolicy,
    hosts: originHosts(config),
    defaultCa: rootCas,
    credentials: (registry, repository) => credentials?.lookup(registry, repository) ?? [],
    timeouts: config.originTimeouts,
    retry: { attempts: config.originAttempts, baseDelayMs: 200, maxDelayMs: 2000 },
    userAgent: `kuik-proxy/${version}`,
    onEvent(event) {
      if (event.type === "retry") {
        metrics.originRetry(event.registry);
        log.debug({ registry: event.registry, attempt: event.attempt, code: event.code }, "origin retry");
      } else if (event.type === "insecure-fallback") {
        log.warn({ registry: event.registry }, "insecure registry does not speak TLS; using plain HTTP");
      }
    },
  });
}

/** The cache registry's connection pool: short connect/headers timeouts, so a dead cache costs little. */
function createCacheDispatcher(config: ProxyConfig, rootCas: string[]): Dispatcher {
  return new Agent({
    connect: {
      timeout: config.cacheTimeouts.connectMs,
      ...(rootCas.length > 0 ? { ca: [...rootCertificates, ...rootCas] } : {}),
    },
    headersTimeout: config.cacheTimeouts.headersMs,
    bodyTimeout: config.cacheTimeouts.bodyMs,
    keepAliveTimeout: 30_000,
  });
}

/** Registries the configuration names (their metric label is always their own). */
function configuredRegistries(config: ProxyConfig): string[] {
  return [...config.insecureRegistries, ...Object.keys(config.registryCaFiles)];
}

/** Per-origin settings: insecure registries and per-registry CAs. */
function originHosts(config: ProxyConfig): Record<string, RegistryHostOptions> {
  const hosts: Record<string, RegistryHostOptions> = {};
  for (const registry of config.insecureRegistries) hosts[registry] = { insecure: true };
  for (const [registry, files] of Object.entries(config.registryCaFiles)) {
    hosts[registry] = { ...hosts[registry], ca: files.map(readPem) };
  }
  return hosts;
}

function readPem(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "unreadable";
    throw new ProxyError("CONFIG_INVALID", `CA file ${file}: ${code}`, { cause: err });
  }
  if (!text.includes("-----BEGIN CERTIFICATE-----")) {
    throw new ProxyError("CONFIG_INVALID", `CA file ${file}: no PEM certificate in it`);
  }
  return text;
}
