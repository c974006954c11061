/**
 * Production wiring of the watcher: {@link KubeClient} over Pepr's `K8s`, {@link RegistryAdapter} over
 * registry-client, the system clock, a {@link TimerScheduler}, and the metrics server. Only built in watcher mode.
 */
import type { Server } from "node:http";
import type { Logger } from "pino";
import type { KuikSettings } from "../shared/watcher-config";
import { CachedImagesController } from "./controller";
import { KubeClient, type K8sFunction } from "./kube-client";
import { KuikMetrics, serveMetrics, type BuildInfo } from "./metrics";
import { RegistryAdapter } from "./registry-adapter";
import { TimerScheduler } from "./scheduler";

/** The running watcher. */
export interface WatcherRuntime {
  controller: CachedImagesController;
  metrics: KuikMetrics;
  /** Starts the loops and the metrics server. */
  start(): void;
  stop(): Promise<void>;
}

/** Builds the watcher from validated settings; nothing runs until {@link WatcherRuntime.start}. */
export function createWatcherRuntime(
  settings: KuikSettings,
  log: Logger,
  build: BuildInfo,
  k8s?: K8sFunction,
): WatcherRuntime {
  const { config, watcher } = settings;
  const scheduler = new TimerScheduler();
  const registry = new RegistryAdapter(config, event => {
    if (event.type !== "response") log.debug({ registryEvent: event }, "registry event");
  });
  const metrics = new KuikMetrics(build);
  const controller = new CachedImagesController({
    kube: new KubeClient(k8s),
    registry,
    clock: { now: () => new Date() },
    scheduler,
    log,
    metrics,
    config,
    watcher,
  });
  metrics.setSnapshot(controller);
  let server: Server | undefined;
  return {
    controller,
    metrics,
    start() {
      controller.start();
      if (watcher.metricsPort === 0) return;
      serveMetrics(metrics.registry, watcher.metricsPort, log).then(
        s => {
          server = s;
          log.info({ port: watcher.metricsPort }, "metrics served");
        },
        (err: unknown) => log.error({ err, port: watcher.metricsPort }, "cannot serve metrics"),
      );
    },
    async stop() {
      controller.stop();
      scheduler.stop();
      server?.close();
      await registry.close();
    },
  };
}
