import { describe, expect, it } from "vitest";
import { createMetrics, MAX_REGISTRY_LABELS } from "./metrics";

async function registryLabels(metrics: ReturnType<typeof createMetrics>, name: string): Promise<Set<string>> {
  const metric = metrics.registry.getSingleMetric(name);
  if (metric === undefined) throw new Error(`no metric ${name}`);
  return new Set((await metric.get()).values.map(v => String(v.labels.registry)));
}

describe("the registry label", () => {
  it("stays bounded: hosts beyond the first MAX_REGISTRY_LABELS unconfigured ones are counted as `other`", async () => {
    const metrics = createMetrics({
      version: "t",
      defaultMetrics: false,
      knownRegistries: ["registry.corp:5000"],
    });
    for (let i = 0; i < 1000; i++) {
      const registry = `attacker-${i}.example`;
      metrics.requestStarted();
      metrics.requestFinished({ registry, kind: "manifest", statusCode: 404, source: "origin" });
      metrics.originRetry(registry);
    }
    metrics.requestStarted();
    metrics.requestFinished({
      registry: "registry.corp:5000",
      kind: "blob",
      statusCode: 200,
      source: "origin",
    });
    metrics.requestStarted();
    metrics.requestFinished({ registry: "docker.io", kind: "blob", statusCode: 200, source: "cache" });
    for (const name of [
      "kuik_proxy_requests_total",
      "kube_image_keeper_proxy_http_requests_total",
      "kuik_proxy_origin_retries_total",
    ]) {
      const labels = await registryLabels(metrics, name);
      expect(labels.size, name).toBeLessThanOrEqual(MAX_REGISTRY_LABELS + 3);
      expect(labels.has("other"), name).toBe(true);
    }
    const requests = await registryLabels(metrics, "kuik_proxy_requests_total");
    expect(requests.has("registry.corp:5000")).toBe(true); // configured: always its own label
    expect(requests.has("docker.io")).toBe(true); // well-known: always its own label
  });
});
