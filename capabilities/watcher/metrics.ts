/**
 * Controller metrics under kube-image-keeper's names (docs/metrics.md lists them) plus copy histograms, on a
 * private prom-client Registry served over plain HTTP by the watcher only. Gauges describing objects are computed
 * at scrape time from the tracker's in-memory view, never by listing the API.
 */
import { createServer, type Server } from "node:http";
import type { Logger } from "pino";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { MetricsSink } from "../kube/ports";

const PREFIX = "kube_image_keeper_controller_";

/** The objects the scrape-time gauges count. */
export interface MetricsSnapshot {
  cachedImages(): Iterable<{ phase: string; isCached: boolean; expiring: boolean }>;
  repositories(): Iterable<{ phase: string }>;
  /** Regular containers of managed pods whose image has a CachedImage. */
  containersWithCachedImage(): Iterable<{ phase: string; isCached: boolean }>;
}

/** Labels of `build_info`. */
export interface BuildInfo {
  version: string;
  revision: string;
  built: string;
}

/** The watcher's metrics. */
export class KuikMetrics implements MetricsSink {
  readonly registry = new Registry();
  readonly #cachingRequest: Counter<"successful" | "upstream_registry">;
  readonly #putInCache: Counter;
  readonly #removed: Counter;
  readonly #copyDuration: Histogram<"result">;
  readonly #copyBytes: Histogram<"result">;
  readonly #proxyServing: Gauge<"reason">;
  readonly #rescued: Counter;
  #snapshot: MetricsSnapshot = EMPTY_SNAPSHOT;

  constructor(build: BuildInfo) {
    const registers = [this.registry];
    const info = new Gauge({
      name: `${PREFIX}build_info`,
      help: "Build information of the kuik controller",
      labelNames: ["version", "revision", "built", "goversion", "goos", "goarch"],
      registers,
    });
    // The Go labels are kept for dashboard compatibility; they carry Node's values.
    info.set({ ...build, goversion: process.version, goos: process.platform, goarch: process.arch }, 1);
    new Gauge({ name: `${PREFIX}up`, help: "1 while the controller serves", registers }).set(1);
    new Gauge({
      name: `${PREFIX}is_leader`,
      help: "1: the single watcher is always the leader",
      registers,
    }).set(1);
    this.#cachingRequest = new Counter({
      name: `${PREFIX}image_caching_request`,
      help: "Image copy attempts into the cache",
      labelNames: ["successful", "upstream_registry"],
      registers,
    });
    this.#putInCache = counter(
      `${PREFIX}image_put_in_cache_total`,
      "Images copied into the cache",
      registers,
    );
    this.#removed = counter(
      `${PREFIX}image_removed_from_cache_total`,
      "Images removed from the cache",
      registers,
    );
    this.#copyDuration = new Histogram({
      name: "kuik_copy_duration_seconds",
      help: "Duration of image copies into the cache",
      labelNames: ["result"],
      buckets: [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800],
      registers,
    });
    this.#copyBytes = new Histogram({
      name: "kuik_copy_bytes",
      help: "Bytes of blobs transferred by image copies",
      labelNames: ["result"],
      buckets: [1e5, 1e6, 1e7, 5e7, 1e8, 5e8, 1e9, 5e9, 1e10],
      registers,
    });
    this.#proxyServing = new Gauge({
      name: `${PREFIX}proxy_serving`,
      help: "1 while new Pods are rewritten to the proxy, 0 while the proxy gate keeps their original images (reason)",
      labelNames: ["reason"],
      registers,
    });
    this.#rescued = counter(
      `${PREFIX}pods_rescued_total`,
      "Pods given their original images back because the proxy on their node was not serving",
      registers,
    );
    registerSnapshotGauges(() => this.#snapshot, registers);
  }

  /** Source of the scrape-time gauges (the controller, built after the metrics it records into). */
  setSnapshot(snapshot: MetricsSnapshot): void {
    this.#snapshot = snapshot;
  }

  cachingRequest(successful: boolean, upstreamRegistry: string): void {
    this.#cachingRequest.inc({ successful: String(successful), upstream_registry: upstreamRegistry });
  }

  putInCache(): void {
    this.#putInCache.inc();
  }

  removedFromCache(): void {
    this.#removed.inc();
  }

  proxyServing(serving: boolean, reason: string): void {
    this.#proxyServing.reset();
    this.#proxyServing.set({ reason }, serving ? 1 : 0);
  }

  podRescued(): void {
    this.#rescued.inc();
  }

  copy(durationSeconds: number, bytes: number, successful: boolean): void {
    const result = successful ? "success" : "failure";
    this.#copyDuration.observe({ result }, durationSeconds);
    this.#copyBytes.observe({ result }, bytes);
  }
}

function counter(name: string, help: string, registers: Registry[]): Counter {
  return new Counter({ name, help, registers });
}

const EMPTY_SNAPSHOT: MetricsSnapshot = {
  cachedImages: () => [],
  repositories: () => [],
  containersWithCachedImage: () => [],
};

function registerSnapshotGauges(source: () => MetricsSnapshot, registers: Registry[]): void {
  new Gauge({
    name: `${PREFIX}cached_images`,
    help: "CachedImages by phase, cached and expiring",
    labelNames: ["status", "cached", "expiring"],
    registers,
    collect() {
      this.reset();
      for (const ci of source().cachedImages()) {
        this.inc({ status: ci.phase, cached: String(ci.isCached), expiring: String(ci.expiring) });
      }
    },
  });
  new Gauge({
    name: `${PREFIX}repositories`,
    help: "Repositories by phase",
    labelNames: ["status"],
    registers,
    collect() {
      this.reset();
      for (const repo of source().repositories()) this.inc({ status: repo.phase });
    },
  });
  new Gauge({
    name: `${PREFIX}containers_with_cached_image`,
    help: "Containers of managed pods whose image has a CachedImage, by its phase and cached state",
    labelNames: ["status", "cached"],
    registers,
    collect() {
      this.reset();
      for (const c of source().containersWithCachedImage()) {
        this.inc({ status: c.phase, cached: String(c.isCached) });
      }
    },
  });
}

/**
 * Serves `GET /metrics` of `registry` on `port` (all interfaces, plain HTTP, as kuik v1's `:8080`).
 * Resolves once listening.
 */
export async function serveMetrics(registry: Registry, port: number, log: Logger): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method !== "GET" || req.url?.split("?")[0] !== "/metrics") {
      res.writeHead(404).end();
      return;
    }
    registry.metrics().then(
      text => res.writeHead(200, { "content-type": registry.contentType }).end(text),
      (err: unknown) => {
        log.error({ err }, "metrics collection failed");
        res.writeHead(500).end();
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, () => resolve());
  });
  return server;
}
