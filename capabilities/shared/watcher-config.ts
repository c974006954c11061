/**
 * Settings of the watcher side (tracking, caching, expiry, metrics) that kuik v1 had as constants or flags, read
 * once at startup like config.ts, and {@link loadKuikConfig}: both sets checked together, so a bad install gets one
 * error listing every problem.
 */
import { ConfigError, loadConfig, type KuikConfig } from "./config";

/** Name of the Secret holding the merged origin credentials the proxy reads (default of the setting). */
export const DEFAULT_PROXY_CREDENTIALS_SECRET = "kuik-proxy-credentials";

/** Environment variable of each watcher setting. */
export const WATCHER_ENV = {
  credentialsSecret: "KUIK_PROXY_CREDENTIALS_SECRET",
  metricsPort: "KUIK_METRICS_PORT",
  resyncIntervalSeconds: "KUIK_RESYNC_INTERVAL_SECONDS",
  sweepIntervalSeconds: "KUIK_EXPIRY_SWEEP_INTERVAL_SECONDS",
  retryBaseSeconds: "KUIK_COPY_RETRY_BASE_SECONDS",
  retryMaxSeconds: "KUIK_COPY_RETRY_MAX_SECONDS",
} as const;

/** The watcher's validated settings. */
export interface WatcherConfig {
  /**
   * Secret (in kuik's namespace) holding the merged origin credentials for the proxy. The ClusterRole grants
   * `patch` on the default name only (api-calls.ts): another name needs that rule changed too.
   */
  credentialsSecret: string;
  /** Port of the plain-HTTP `/metrics` server; 0 disables it. */
  metricsPort: number;
  /** Full resync: list every managed pod, CachedImage and Repository and recompute everything. */
  resyncIntervalMs: number;
  /** Expiry sweep and Repository maintenance (status, `updateInterval` refresh). */
  sweepIntervalMs: number;
  /** First retry delay of a failed copy; doubled at each failure up to {@link retryMaxMs}. */
  retryBaseMs: number;
  retryMaxMs: number;
}

/** Everything kuik reads from its environment. */
export interface KuikSettings {
  config: KuikConfig;
  watcher: WatcherConfig;
}

const DNS_SUBDOMAIN_RE = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/**
 * Reads and validates the watcher settings.
 *
 * @throws {@link ConfigError} listing every invalid variable.
 */
export function loadWatcherConfig(env: Readonly<Record<string, string | undefined>>): WatcherConfig {
  const problems: string[] = [];
  const read = (name: string): string | undefined => {
    const value = env[name]?.trim();
    return value === undefined || value === "" ? undefined : value;
  };
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = read(name);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (Number.isInteger(n) && n >= min && n <= max) return n;
    problems.push(`${name}=${JSON.stringify(raw)}: must be an integer between ${min} and ${max}`);
    return fallback;
  };
  const secret = read(WATCHER_ENV.credentialsSecret) ?? DEFAULT_PROXY_CREDENTIALS_SECRET;
  if (!DNS_SUBDOMAIN_RE.test(secret)) {
    problems.push(`${WATCHER_ENV.credentialsSecret}=${JSON.stringify(secret)}: must be a Secret name`);
  }
  const config: WatcherConfig = {
    credentialsSecret: secret,
    metricsPort: int(WATCHER_ENV.metricsPort, 8080, 0, 65535),
    resyncIntervalMs: int(WATCHER_ENV.resyncIntervalSeconds, 600, 10, 86400) * 1000,
    sweepIntervalMs: int(WATCHER_ENV.sweepIntervalSeconds, 60, 1, 86400) * 1000,
    retryBaseMs: int(WATCHER_ENV.retryBaseSeconds, 10, 1, 3600) * 1000,
    retryMaxMs: int(WATCHER_ENV.retryMaxSeconds, 1800, 1, 86400) * 1000,
  };
  if (config.retryMaxMs < config.retryBaseMs) {
    problems.push(`${WATCHER_ENV.retryMaxSeconds} must not be below ${WATCHER_ENV.retryBaseSeconds}`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/**
 * Reads every kuik setting (config.ts and the watcher's).
 *
 * @throws {@link ConfigError} listing the problems of both sets.
 */
export function loadKuikConfig(env: Readonly<Record<string, string | undefined>>): KuikSettings {
  const problems: string[] = [];
  const attempt = <T>(load: () => T): T | undefined => {
    try {
      return load();
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      problems.push(...e.problems);
      return undefined;
    }
  };
  const config = attempt(() => loadConfig(env));
  const watcher = attempt(() => loadWatcherConfig(env));
  if (config === undefined || watcher === undefined) throw new ConfigError(problems);
  return { config, watcher };
}
