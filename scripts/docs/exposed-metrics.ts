/**
 * Every Prometheus metric kuik exposes, read from the real registries rather than from memory: the proxy's
 * (`createMetrics`, with the Node.js default metrics it registers in production), the watcher's (`KuikMetrics`) and
 * Pepr's own (`metricsCollector`, served on :3000 by the admission and watcher pods). docs/metrics.md and the
 * Grafana dashboard are checked against this list (scripts/docs/*.test.ts), so a renamed metric breaks a test.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { metricsCollector } from "pepr";
import type { Registry } from "prom-client";
import { KuikMetrics } from "../../capabilities/watcher/metrics";
import { createMetrics } from "../../proxy/src/metrics";

/** Which `/metrics` endpoint serves a metric (docs/metrics.md has one table per endpoint). */
export type Endpoint = "proxy" | "watcher" | "pepr";

/** One exposed metric family. */
export interface ExposedMetric {
  name: string;
  /** `counter`, `gauge`, `histogram` or `summary`, as in the `# TYPE` line. */
  type: string;
  /** Label names; `undefined` when the registry does not tell (Pepr's private registry). */
  labels: string[] | undefined;
  endpoint: Endpoint;
}

/**
 * Pepr adds `<type>_timeouts` counters lazily, when its mutate/validate processor first runs
 * (`MeasureWebhookTimeout`, not exported). Their webhook types are read from the installed bundle, so a Pepr upgrade
 * that renames them fails loudly instead of leaving the docs stale.
 */
export function peprLazyCounters(): string[] {
  const require = createRequire(import.meta.url);
  const bundle = readFileSync(require.resolve("pepr"), "utf8");
  if (!bundle.includes("`${webhookType}_timeouts`")) {
    throw new Error("pepr's bundle no longer names its timeout counters `${webhookType}_timeouts`");
  }
  const types = [...bundle.matchAll(/new MeasureWebhookTimeout\("(\w+)"/g)].map(m => m[1] as string);
  if (types.length === 0) throw new Error("pepr's bundle no longer constructs MeasureWebhookTimeout");
  return [...new Set(types)].map(type => `${type}_timeouts`);
}

/** Name and type of every family in a text exposition (`# TYPE name type` lines). */
export function parseExposition(text: string): { name: string; type: string }[] {
  return [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map(m => ({
    name: m[1] as string,
    type: m[2] as string,
  }));
}

async function fromRegistry(registry: Registry, endpoint: Endpoint): Promise<ExposedMetric[]> {
  const labels = new Map(
    registry
      .getMetricsAsArray()
      .map(m => [m.name, [...((m as unknown as { labelNames?: string[] }).labelNames ?? [])]]),
  );
  return parseExposition(await registry.metrics()).map(m => ({ ...m, labels: labels.get(m.name), endpoint }));
}

async function fromPepr(): Promise<ExposedMetric[]> {
  for (const name of peprLazyCounters()) metricsCollector.addCounter(name, `Number of ${name} (lazy)`);
  return parseExposition(await metricsCollector.getMetrics()).map(m => ({
    ...m,
    labels: undefined,
    endpoint: "pepr" as const,
  }));
}

/** Every metric family kuik's processes expose, by endpoint. */
export async function exposedMetrics(): Promise<ExposedMetric[]> {
  // defaultMetrics as in production (wiring.ts): the proxy also exposes process_* and nodejs_* metrics.
  const proxy = createMetrics({ version: "0.0.0-docs", defaultMetrics: true });
  const watcher = new KuikMetrics({ version: "0.0.0-docs", revision: "docs", built: "docs" });
  return [
    ...(await fromRegistry(proxy.registry, "proxy")),
    ...(await fromRegistry(watcher.registry, "watcher")),
    ...(await fromPepr()),
  ];
}

/**
 * The series names a family can appear under in PromQL: histograms add `_bucket`/`_sum`/`_count`, summaries
 * `_sum`/`_count` (their quantiles keep the bare name).
 */
export function seriesNames(metric: Pick<ExposedMetric, "name" | "type">): string[] {
  if (metric.type === "histogram") return ["_bucket", "_sum", "_count"].map(s => metric.name + s);
  if (metric.type === "summary") return [metric.name, metric.name + "_sum", metric.name + "_count"];
  return [metric.name];
}
