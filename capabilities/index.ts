/**
 * kuik's module: the two capabilities and, in the watcher, the controller behind them. {@link createKuik} reads
 * and checks the whole configuration first (one error listing every problem), so a bad install fails at start.
 */
import { Log, type Capability } from "pepr";
import { createImageRewriter } from "./image-rewriter/capability";
import { compilePolicy } from "./image-rewriter/policy";
import { KubeClient } from "./kube/client";
import { loadKubeConnection } from "./kube/config";
import { KubeHttp } from "./kube/http";
import { configuredGate, type ProxyGate } from "./proxy-gate/gate";
import { admittedImages } from "./image-rewriter/recheck";
import type { KuikConfig } from "./shared/config";
import { loadKuikConfig } from "./shared/watcher-config";
import { createCachedImages } from "./watcher/capability";
import { IGNORE_WATCH_EVENTS } from "./watcher/controller";
import { createWatcherRuntime, type WatcherRuntime } from "./watcher/runtime";

/** The module's capabilities and how to start what runs beside Pepr. */
export interface Kuik {
  capabilities: Capability[];
  /** Watcher mode: starts the controller loops and the metrics server. Otherwise nothing. */
  start(): void;
  runtime?: WatcherRuntime;
  /** Admission mode: the proxy gate the webhook asks before rewriting (capabilities/proxy-gate). */
  gate?: ProxyGate;
  /** The validated configuration it was built from. */
  config: KuikConfig;
}

/**
 * Builds kuik from its environment. The watcher runtime exists only where Pepr runs watches
 * (`PEPR_WATCH_MODE=true` or `PEPR_MODE=dev`), never in admission pods or at build time; the admission's proxy gate
 * only in admission pods, where it starts reading the proxy's status at once.
 *
 * @throws ConfigError listing every configuration problem.
 */
export function createKuik(env: Readonly<Record<string, string | undefined>>, version: string): Kuik {
  const settings = loadKuikConfig(env);
  const policy = compilePolicy(settings.config);
  const watching = env.PEPR_MODE !== "build" && (env.PEPR_WATCH_MODE === "true" || env.PEPR_MODE === "dev");
  const build = { version, revision: env.KUIK_REVISION ?? "unknown", built: env.KUIK_BUILT ?? "unknown" };
  const runtime = watching
    ? createWatcherRuntime(settings, admittedImages(policy), Log.child({ component: "cached-images" }), build)
    : undefined;
  const admitting = env.PEPR_MODE !== "build" && env.PEPR_WATCH_MODE !== "true";
  const gate = admitting ? startAdmissionGate(settings.config) : undefined;
  const kuik: Kuik = {
    capabilities: [
      createImageRewriter(policy, gate),
      createCachedImages(runtime?.controller ?? IGNORE_WATCH_EVENTS),
    ],
    start: () => runtime?.start(),
    config: settings.config,
  };
  if (runtime !== undefined) kuik.runtime = runtime;
  if (gate !== undefined) kuik.gate = gate;
  return kuik;
}

/**
 * The admission's own proxy gate, over its own API connection (the admission Pods' ServiceAccount). Without an API
 * configuration it stays closed: Pods keep their original images, and the log says why once.
 */
function startAdmissionGate(config: KuikConfig): ProxyGate {
  const log = Log.child({ component: "proxy-gate" });
  let kube: KubeClient | undefined;
  try {
    if (config.proxyGate)
      kube = new KubeClient(new KubeHttp(loadKubeConnection(), { userAgent: "kuik-admission" }));
  } catch (err) {
    log.error({ err }, "no Kubernetes API configuration: the proxy gate stays closed");
  }
  const unreadable = (): Promise<never> => Promise.reject(new Error("no Kubernetes API configuration"));
  const gate = configuredGate(config, kube ?? { listPods: unreadable }, log);
  gate.start();
  return gate;
}
