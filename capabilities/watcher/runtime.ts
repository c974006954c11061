/**
 * Production wiring of the watcher: {@link KubeClient} over one {@link KubeHttp} (a single undici Agent for every
 * API call of the process, configured once from the kubeconfig or the in-cluster service account),
 * {@link RegistryAdapter} over registry-client, the system clock, a {@link TimerScheduler}, and the metrics server.
 * Only built in watcher mode.
 */
import type { Server } from "node:http";
import type { Logger } from "pino";
import { startBootstrap, type Bootstrap } from "../bootstrap/bootstrap";
import { KubeClient } from "../kube/client";
import { loadKubeConnection } from "../kube/config";
import { KubeHttp, type KubeTransport } from "../kube/http";
import { configuredGate } from "../proxy-gate/gate";
import type { AdmittedImages } from "../shared/pod-images";
import type { KuikSettings } from "../shared/watcher-config";
import { CachedImagesController } from "./controller";
import { KuikMetrics, serveMetrics, type BuildInfo } from "./metrics";
import { RegistryAdapter } from "./registry-adapter";
import { TimerScheduler } from "./scheduler";

/** The running watcher. */
export interface WatcherRuntime {
  controller: CachedImagesController;
  metrics: KuikMetrics;
  /**
   * Before the Pepr module and {@link start}: with `bootstrap` (KUIK_BOOTSTRAP=true), starts the bootstrap
   * (capabilities/bootstrap) and resolves once kuik's CRDs are Established, so Pepr's watches find them, or after
   * `waitMs` (default 60 s; the bootstrap keeps retrying in the background). Otherwise resolves at once.
   */
  prepare(opts: { bootstrap: boolean; waitMs?: number }): Promise<void>;
  /** Starts the loops and the metrics server. */
  start(): void;
  stop(): Promise<void>;
}

/**
 * Builds the watcher from validated settings and the admission rules it re-applies to every pod
 * (image-rewriter/recheck.ts, built from the same settings as admission's); nothing runs until {@link WatcherRuntime.start}. `kube` replaces the
 * API transport (tests); by default one {@link KubeHttp} is built here, closed by {@link WatcherRuntime.stop}.
 *
 * @throws KubeConfigError when the Kubernetes configuration cannot be loaded.
 */
export function createWatcherRuntime(
  settings: KuikSettings,
  admitted: AdmittedImages,
  log: Logger,
  build: BuildInfo,
  kube?: KubeTransport,
): WatcherRuntime {
  const { config, watcher } = settings;
  const transport = kube ?? new KubeHttp(loadKubeConnection(), { userAgent: `kuik/${build.version}` });
  const scheduler = new TimerScheduler();
  const registry = new RegistryAdapter(config, event => {
    if (event.type !== "response") log.debug({ registryEvent: event }, "registry event");
  });
  const metrics = new KuikMetrics(build);
  const kubeClient = new KubeClient(transport);
  const gate = configuredGate(config, kubeClient, log.child({ part: "proxy-gate" }), verdict =>
    controller.onProxyVerdict(verdict),
  );
  const controller = new CachedImagesController({
    kube: kubeClient,
    gate,
    registry,
    clock: { now: () => new Date() },
    scheduler,
    log,
    metrics,
    config,
    watcher,
    admitted,
  });
  metrics.setSnapshot(controller);
  let server: Server | undefined;
  let bootstrap: Bootstrap | undefined;
  const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms).unref());
  return {
    controller,
    metrics,
    async prepare({ bootstrap: enabled, waitMs = 60_000 }) {
      if (!enabled || bootstrap !== undefined) return;
      bootstrap = startBootstrap({ kube: transport, log: log.child({ component: "bootstrap" }), sleep });
      if (!(await settlesWithin(bootstrap.crdsEstablished, waitMs)))
        log.warn({ waitMs }, "bootstrap: CRDs not Established yet; starting anyway, still retrying");
    },
    start() {
      controller.start();
      gate.start();
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
      bootstrap?.stop();
      gate.stop();
      controller.stop();
      scheduler.stop();
      server?.close();
      await registry.close();
      if (kube === undefined && transport instanceof KubeHttp) await transport.close();
    },
  };
}

/** Whether `promise` resolves within `ms`. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  // not unref'd: until Pepr's server listens, this timer is what keeps the process alive
  const late = new Promise<boolean>(resolve => (timer = setTimeout(() => resolve(false), ms)));
  const settled = await Promise.race([promise.then(() => true), late]);
  clearTimeout(timer);
  return settled;
}
