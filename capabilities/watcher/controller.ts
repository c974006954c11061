// capabilities/watcher/: the watcher's wiring; the only folder that composes the concerns.
/**
 * The watcher: receives the binding events, owns the tracker, the caching work queue and the periodic loops, and
 * builds each pass's dependencies. All state lives in this instance (no module globals); every dependency is
 * injected, so tests drive it with fakes and a fake clock/scheduler.
 *
 * Loops: a full resync at start and every `resyncIntervalMs` (lists everything, recomputes tracking, queues every
 * CachedImage for a cache check — so images not Ready are retried after a restart and images that vanished from
 * the cache registry are copied again — and rewrites the proxy credentials); an expiry sweep plus Repository
 * maintenance every `sweepIntervalMs`; with a proxy gate, a rescue pass every {@link RESCUE_INTERVAL_MS} for Pods
 * stuck on a proxy that is not serving (capabilities/proxy-gate).
 */
import type { Logger } from "pino";
import { cacheReference, sourceReference } from "../caching/cache-reference";
import { hasFinalizer } from "../caching/finalizer";
import { reconcileCachedImage, type CacheDeps } from "../caching/reconcile";
import type { CachedImage, Repository } from "../crd";
import { LivePods, sweepExpired } from "../expiry/sweep";
import { EventRecorder, type EventSink } from "../kube/events";
import { removeFinalizerOps } from "../kube/patch-ops";
import type { Clock, KubePort, MetricsSink, RegistryPort, Scheduler } from "../kube/ports";
import type { GateVerdict } from "../proxy-gate/decision";
import { Rescuer, type RescuablePod } from "../proxy-gate/rescue";
import { ProxyCredentialsSync, keyringForImage } from "../repositories/credentials";
import { maintainRepositories } from "../repositories/maintenance";
import { normalizeDigest, readStatus } from "../shared/cached-image-status";
import type { KuikConfig } from "../shared/config";
import { errorMessage } from "../shared/errors";
import { ANNOTATION_FORCE_UPDATE, FINALIZER_REPOSITORY, FORCE_UPDATE_VALUE } from "../shared/labels";
import { PROXY_DAEMONSET } from "../shared/object-names";
import { podImages, type AdmittedImages } from "../shared/pod-images";
import type { PodLike } from "../shared/pods";
import type { WatcherConfig } from "../shared/watcher-config";
import { Tracker } from "../tracking/tracker";
import type { MetricsSnapshot } from "./metrics";
import { WorkQueue } from "./work-queue";

/** What the bindings call. Phases are KFC's `WatchPhase` values (`ADDED`, `MODIFIED`, `DELETED`). */
export interface WatchHandlers {
  onPod(pod: PodLike, phase: string): void;
  onCachedImage(ci: CachedImage, phase: string): void;
  onRepository(repo: Repository, phase: string): void;
}

/** Handlers for processes that do not watch (admission, build): events are ignored. */
export const IGNORE_WATCH_EVENTS: WatchHandlers = { onPod() {}, onCachedImage() {}, onRepository() {} };

/** The dependencies of {@link CachedImagesController}. */
export interface ControllerDeps {
  kube: KubePort;
  registry: RegistryPort;
  clock: Clock;
  scheduler: Scheduler;
  log: Logger;
  metrics: MetricsSink;
  config: Pick<
    KuikConfig,
    "namespace" | "expiryDelayMs" | "proxyPort" | "registryEndpoint" | "maxConcurrentCachedImageReconciles"
  >;
  watcher: WatcherConfig;
  /** kuik's admission rules, re-applied to every pod the watcher reads (image-rewriter/recheck.ts). */
  admitted: AdmittedImages;
  /** Defaults to an {@link EventRecorder} over `kube`. */
  events?: EventSink;
  /** The proxy gate (capabilities/proxy-gate/gate.ts); without one, no Pod is rescued. */
  gate?: { verdict(node?: string): GateVerdict };
  /** Tracking debounce (default 1 s) and progress patch interval (default 5 s). */
  debounceMs?: number;
  progressIntervalMs?: number;
}

const CREDENTIALS_DEBOUNCE_MS = 2000;
/** How often Pods stuck on a proxy that is not serving are rescued (the issue allows 60 s). */
export const RESCUE_INTERVAL_MS = 10_000;

/** See the file comment. */
export class CachedImagesController implements WatchHandlers, MetricsSnapshot {
  readonly tracker: Tracker;
  readonly queue: WorkQueue;
  readonly #deps: ControllerDeps;
  readonly #cacheDeps: CacheDeps;
  readonly #credentials: ProxyCredentialsSync;
  readonly #live: LivePods;
  readonly #events: EventSink;
  readonly #rescuer: Rescuer | undefined;
  #proxyServing: boolean | undefined;
  readonly #cancels = new Map<string, () => void>();
  #stopped = false;

  constructor(deps: ControllerDeps) {
    const { kube, clock, scheduler, log, config, watcher } = deps;
    this.#deps = deps;
    this.#events = deps.events ?? new EventRecorder(kube, clock, log);
    this.tracker = new Tracker({
      kube,
      clock,
      scheduler,
      log: log.child({ part: "tracker" }),
      expiryDelayMs: config.expiryDelayMs,
      admitted: deps.admitted,
      debounceMs: deps.debounceMs ?? 1000,
    });
    this.#live = new LivePods(kube, clock, deps.admitted);
    this.#credentials = new ProxyCredentialsSync(
      kube,
      { name: watcher.credentialsSecret, namespace: config.namespace },
      log,
    );
    this.#cacheDeps = this.#buildCacheDeps();
    if (deps.gate !== undefined) {
      this.#rescuer = new Rescuer({
        kube,
        events: this.#events,
        gate: deps.gate,
        port: config.proxyPort,
        log: log.child({ part: "rescue" }),
        onRescued: () => deps.metrics.podRescued(),
      });
    }
    this.queue = new WorkQueue({
      concurrency: config.maxConcurrentCachedImageReconciles,
      scheduler,
      log,
      process: name => this.#process(name),
    });
  }

  /** Pod binding events: tracking. */
  onPod(pod: PodLike, phase: string): void {
    this.tracker.onPod(pod, phase === "DELETED");
    this.#rescuer?.onPod(pod as RescuablePod, phase === "DELETED");
  }

  /**
   * The gate's verdict for Pods not scheduled yet changed: the metric, and an Event on the proxy DaemonSet when
   * rewriting stops (Warning) or resumes after having stopped (Normal).
   */
  onProxyVerdict(verdict: GateVerdict): void {
    const { metrics, config } = this.#deps;
    metrics.proxyServing(verdict.rewrite, verdict.reason);
    const was = this.#proxyServing;
    this.#proxyServing = verdict.rewrite;
    if (was === verdict.rewrite || (was === undefined && verdict.rewrite)) return;
    const object = {
      apiVersion: "apps/v1",
      kind: "DaemonSet",
      namespace: config.namespace,
      name: PROXY_DAEMONSET,
    };
    void this.#events.record(
      object,
      verdict.rewrite
        ? {
            type: "Normal",
            reason: "ProxyAvailable",
            message: "kuik's proxy serves again: new Pods are rewritten",
          }
        : {
            type: "Warning",
            reason: "ProxyUnavailable",
            message: `kuik's proxy is not serving (${verdict.detail}): new Pods keep their original images`,
          },
    );
  }

  /** CachedImage binding events: tracking, and a caching pass when {@link needsReconcile}. */
  onCachedImage(ci: CachedImage, phase: string): void {
    const name = ci.metadata?.name as string | undefined;
    if (name === undefined) return;
    const deleted = phase === "DELETED";
    this.tracker.onCachedImage(ci, deleted);
    if (deleted) this.queue.forget(name);
    else if (needsReconcile(ci)) this.queue.add(name);
  }

  /** Repository binding events: tracking, and a (debounced) rewrite of the proxy credentials. */
  onRepository(repo: Repository, phase: string): void {
    this.tracker.onRepository(repo, phase === "DELETED");
    this.#schedule("credentials", CREDENTIALS_DEBOUNCE_MS, () => this.syncCredentials(), false);
    const name = repo.metadata?.name as string | undefined;
    if (phase !== "DELETED" && name !== undefined && repo.metadata?.deletionTimestamp !== undefined) {
      if (removeFinalizerOps(repo, FINALIZER_REPOSITORY).length > 0)
        this.#schedule(`repository-finalizer/${name}`, 0, () => this.releaseRepository(name), false);
    }
  }

  /**
   * Lets a Repository being deleted go: kube-image-keeper v1 put its finalizer on every Repository and kuik has no
   * use for it (a Repository is only a place for pull secrets), so a Repository adopted from v1 would otherwise hang
   * in deletion for ever. Reads it again first: only a Repository still being deleted loses the finalizer.
   */
  async releaseRepository(name: string): Promise<void> {
    const repo = await this.#deps.kube.getRepository(name);
    if (repo?.metadata?.deletionTimestamp === undefined) return;
    const ops = removeFinalizerOps(repo, FINALIZER_REPOSITORY);
    if (ops.length === 0) return;
    await this.#deps.kube.patchRepository(name, ops);
    this.#deps.log.info(
      { repository: name, finalizer: FINALIZER_REPOSITORY },
      "released a v1 Repository finalizer",
    );
  }

  /** Starts the loops: resync now, then periodically; sweep periodically. */
  start(): void {
    this.#schedule("resync", 0, () => this.resync(), this.#deps.watcher.resyncIntervalMs);
    this.#schedule(
      "sweep",
      this.#deps.watcher.sweepIntervalMs,
      () => this.sweep(),
      this.#deps.watcher.sweepIntervalMs,
    );
    const rescuer = this.#rescuer;
    if (rescuer !== undefined)
      this.#schedule("rescue", RESCUE_INTERVAL_MS, () => rescuer.sweep(), RESCUE_INTERVAL_MS);
  }

  /** Stops the loops and the queue (running passes finish). */
  stop(): void {
    this.#stopped = true;
    for (const cancel of this.#cancels.values()) cancel();
    this.#cancels.clear();
    this.tracker.stop();
    this.queue.stop();
  }

  /** Full resync; see the file comment. */
  async resync(): Promise<void> {
    await this.tracker.resync();
    for (const name of this.tracker.cachedImages.keys()) this.queue.add(name);
    await this.#credentials.sync(this.tracker.repositories.values(), { force: true });
  }

  /** Expiry sweep, then Repository status and refreshes. */
  async sweep(): Promise<void> {
    const { kube, clock, log } = this.#deps;
    const result = await sweepExpired(this.tracker.cachedImages.values(), {
      kube,
      clock,
      log,
      events: this.#events,
      live: this.#live,
    });
    if (result.view !== undefined && result.inUse.length > 0) this.tracker.refreshPods(result.view.pods);
    await maintainRepositories(this.tracker.repositories.values(), this.tracker.cachedImages.values(), {
      kube,
      clock,
      log,
    });
  }

  /** Rewrites the proxy credentials Secret from the observed Repositories (if it changed). */
  async syncCredentials(): Promise<void> {
    await this.#credentials.sync(this.tracker.repositories.values());
  }

  /** Scrape-time view of the CachedImages (metrics). */
  *cachedImages(): Iterable<{ phase: string; isCached: boolean; expiring: boolean }> {
    for (const ci of this.tracker.cachedImages.values()) {
      const status = readStatus(ci);
      yield {
        phase: status.phase ?? "",
        isCached: status.isCached === true,
        expiring: Boolean(ci.spec?.expiresAt),
      };
    }
  }

  /** Scrape-time view of the Repositories (metrics). */
  *repositories(): Iterable<{ phase: string }> {
    for (const repo of this.tracker.repositories.values())
      yield { phase: (repo.status?.phase as string | undefined) ?? "" };
  }

  /** Scrape-time view of the containers using a CachedImage (metrics). */
  *containersWithCachedImage(): Iterable<{ phase: string; isCached: boolean }> {
    for (const pod of this.tracker.pods) {
      for (const image of podImages(pod, { admitted: this.#deps.admitted }).images) {
        const ci = image.kind === "container" ? this.tracker.cachedImages.get(image.name) : undefined;
        if (ci !== undefined)
          yield { phase: readStatus(ci).phase ?? "", isCached: readStatus(ci).isCached === true };
      }
    }
  }

  async #process(name: string): Promise<void> {
    let requeueAfterMs: number | undefined;
    try {
      ({ requeueAfterMs } = await reconcileCachedImage(name, this.#cacheDeps));
    } catch (err) {
      this.#deps.log.warn({ cachedImage: name, error: errorMessage(err) }, "caching pass failed; retrying");
      requeueAfterMs = this.#deps.watcher.retryBaseMs;
    }
    if (requeueAfterMs !== undefined)
      this.queue.addAfter(name, requeueAfterMs, this.#deps.clock.now().getTime());
  }

  /**
   * Runs `fn` after `delayMs`, then every `everyMs` if given. A failed run is logged and retried sooner: a periodic
   * task after the retry base delay (a resync failing at start, while the API server warms up, must not wait a whole
   * interval); a one-shot task (`everyMs` false) with exponential backoff from the retry base delay up to the retry
   * maximum, until it succeeds (a credentials rewrite that hit an API hiccup must not wait for the next resync).
   * One pending run per name: a one-shot asked for again while one is pending (or backing off) is not duplicated.
   */
  #schedule(
    name: string,
    delayMs: number,
    fn: () => Promise<void>,
    everyMs: number | false,
    failures = 0,
  ): void {
    if (this.#stopped || (everyMs === false && this.#cancels.has(name))) return;
    this.#cancels.get(name)?.();
    const { retryBaseMs, retryMaxMs } = this.#deps.watcher;
    const run = async (): Promise<void> => {
      this.#cancels.delete(name);
      try {
        await fn();
      } catch (err) {
        this.#deps.log.error({ err, loop: name, failures: failures + 1 }, "scheduled task failed");
        const retryMs =
          everyMs === false
            ? Math.min(retryBaseMs * 2 ** failures, retryMaxMs)
            : Math.min(everyMs, retryBaseMs);
        this.#schedule(name, retryMs, fn, everyMs, failures + 1);
        return;
      }
      if (everyMs !== false) this.#schedule(name, everyMs, fn, everyMs);
    };
    this.#cancels.set(
      name,
      this.#deps.scheduler.after(delayMs, () => void run()),
    );
  }

  #buildCacheDeps(): CacheDeps {
    const { kube, registry, clock, log, metrics, config, watcher } = this.#deps;
    return {
      kube,
      registry,
      clock,
      log,
      metrics,
      events: this.#events,
      settings: {
        registryEndpoint: config.registryEndpoint,
        retryBaseMs: watcher.retryBaseMs,
        retryMaxMs: watcher.retryMaxMs,
        progressIntervalMs: this.#deps.progressIntervalMs ?? 5000,
      },
      keyringFor: ref => keyringForImage(kube, ref, log),
      // Decided at deletion time from a list made now, not the one the expiry sweep just used.
      liveUsers: name => this.#live.usersOf(name, true),
      digestShared: (name, cacheName, digest) => this.#digestShared(name, cacheName, digest),
    };
  }

  #digestShared(name: string, cacheName: string, digest: string): boolean {
    for (const [other, ci] of this.tracker.cachedImages) {
      if (other === name || ci.metadata?.deletionTimestamp) continue;
      const ref = sourceReference(ci);
      if ("error" in ref || cacheReference(ref, this.#deps.config.registryEndpoint).name !== cacheName)
        continue;
      if ((ref.digest ?? normalizeDigest(readStatus(ci).digest)) === digest) return true;
    }
    return false;
  }
}

/**
 * Whether a CachedImage event needs a caching pass: new or changed spec (generation not yet observed), missing
 * finalizer, a refresh asked for, or deletion with kuik's finalizer. Status-only updates (kuik's own patches)
 * do not, which is what stops a pass from triggering itself.
 */
export function needsReconcile(ci: CachedImage): boolean {
  if (ci.metadata?.deletionTimestamp) return hasFinalizer(ci);
  if (!hasFinalizer(ci)) return true;
  if (ci.metadata?.annotations?.[ANNOTATION_FORCE_UPDATE] === FORCE_UPDATE_VALUE) return true;
  const status = readStatus(ci);
  return status.observedGeneration === undefined || status.observedGeneration !== ci.metadata?.generation;
}
