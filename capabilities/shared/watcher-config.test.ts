import { describe, expect, it } from "vitest";
import { ConfigError } from "./config";
import { loadKuikConfig, loadWatcherConfig } from "./watcher-config";

describe("loadWatcherConfig", () => {
  it("has defaults", () => {
    expect(loadWatcherConfig({})).toEqual({
      credentialsSecret: "kuik-proxy-credentials",
      metricsPort: 8080,
      resyncIntervalMs: 600_000,
      sweepIntervalMs: 60_000,
      retryBaseMs: 10_000,
      retryMaxMs: 1_800_000,
    });
  });

  it("reads every variable", () => {
    expect(
      loadWatcherConfig({
        KUIK_PROXY_CREDENTIALS_SECRET: "creds",
        KUIK_METRICS_PORT: "0",
        KUIK_RESYNC_INTERVAL_SECONDS: "30",
        KUIK_EXPIRY_SWEEP_INTERVAL_SECONDS: "1",
        KUIK_COPY_RETRY_BASE_SECONDS: "2",
        KUIK_COPY_RETRY_MAX_SECONDS: "60",
      }),
    ).toEqual({
      credentialsSecret: "creds",
      metricsPort: 0,
      resyncIntervalMs: 30_000,
      sweepIntervalMs: 1000,
      retryBaseMs: 2000,
      retryMaxMs: 60_000,
    });
  });
});

describe("loadKuikConfig", () => {
  it("reports the problems of both configuration sets in one error", () => {
    let error: unknown;
    try {
      loadKuikConfig({
        KUIK_PROXY_HOST_PORT: "0",
        KUIK_WEBHOOK_IGNORED_IMAGES: "(",
        KUIK_METRICS_PORT: "http",
        KUIK_PROXY_CREDENTIALS_SECRET: "Not_A_Name",
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.join("\n");
    for (const name of [
      "KUIK_PROXY_HOST_PORT",
      "KUIK_WEBHOOK_IGNORED_IMAGES",
      "KUIK_METRICS_PORT",
      "KUIK_PROXY_CREDENTIALS_SECRET",
    ]) {
      expect(problems).toContain(name);
    }
  });

  it("returns both sets when everything is valid", () => {
    const { config, watcher } = loadKuikConfig({ KUIK_NAMESPACE: "cache" });
    expect(config.namespace).toBe("cache");
    expect(watcher.metricsPort).toBe(8080);
  });
});
