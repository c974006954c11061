// capabilities/tracking/: which pods use which images, and the CachedImages that follow.
/**
 * Tracking: which pods use which images, kept in memory from the Pod watch, and the CachedImages, Repositories and
 * `status.usedBy` that follow from it ({@link planTracking}).
 *
 * A pod event only shows one pod, but `usedBy` needs every user of an image, so the tracker keeps an index of the
 * managed pods (a slim copy: names, images and pull policies, the opt-out label, pull secrets: what the admission
 * rules and the plan read). Events update it and
 * schedule a debounced flush, so a burst of pod events (a Deployment rollout) costs one recompute. A full resync
 * (at start and every `resyncIntervalMs`) replaces the index and the observed objects with fresh lists, so missed
 * watch events (pepr#3178, KFC#979) are repaired within one interval.
 */
import type { Logger } from "pino";
import type { CachedImage, Repository } from "../crd";
import type { Clock, KubePort, Scheduler } from "../kube/ports";
import { errorMessage } from "../shared/errors";
import { LABEL_IMAGE_CACHING_POLICY } from "../shared/labels";
import { namespacedName, type AdmittedImages } from "../shared/pod-images";
import type { ContainerLike, PodLike, ServiceAccountLike } from "../shared/pods";
import { ObservedMap, resourceVersionOf } from "./observed";
import { planTracking, type TrackingPlan } from "./plan";
import { writePlan } from "./write";

/** What the tracker needs. */
export interface TrackerDeps {
  kube: KubePort;
  clock: Clock;
  scheduler: Scheduler;
  log: Logger;
  expiryDelayMs: number;
  /** The admission rules, re-applied to every pod (shared/pod-images.ts). */
  admitted: AdmittedImages;
  /** Delay between the first event of a burst and the recompute. */
  debounceMs: number;
}

const RETRY_FLUSH_MS = 10_000;

/** See the file comment. */
export class Tracker {
  readonly #pods = new ObservedMap<PodLike>();
  /** Service accounts by `namespace/name`; `null`: known not to exist. */
  readonly #accounts = new Map<string, ServiceAccountLike | null>();
  readonly #cachedImages = new ObservedMap<CachedImage>();
  readonly #repositories = new ObservedMap<Repository>();
  readonly #applied = new Map<string, string>();
  #cancelFlush: (() => void) | undefined;
  #flushing: Promise<void> | undefined;
  #again = false;

  constructor(private readonly deps: TrackerDeps) {}

  /** CachedImages as last observed. */
  get cachedImages(): ReadonlyMap<string, CachedImage> {
    return this.#cachedImages.map;
  }

  /** Repositories as last observed. */
  get repositories(): ReadonlyMap<string, Repository> {
    return this.#repositories.map;
  }

  /** The managed pods as last observed. */
  get pods(): Iterable<PodLike> {
    return this.#pods.map.values();
  }

  /** A managed pod was added, modified or deleted. */
  onPod(pod: PodLike, deleted: boolean): void {
    const key = namespacedName(pod);
    const rv = resourceVersionOf(pod);
    if (deleted) this.#pods.delete(key, rv);
    else this.#pods.set(key, slimPod(pod), rv);
    this.scheduleFlush();
  }

  /** A CachedImage was added, modified or deleted. */
  onCachedImage(ci: CachedImage, deleted: boolean): void {
    const name = ci.metadata?.name as string | undefined;
    if (name === undefined) return;
    const known = this.#cachedImages.map.has(name);
    if (deleted) this.#cachedImages.delete(name, resourceVersionOf(ci));
    else this.#cachedImages.set(name, ci, resourceVersionOf(ci));
    // A new or vanished CachedImage changes the plan (usedBy to write, or an image to recreate).
    if (deleted || !known) this.scheduleFlush();
  }

  /** A Repository was added, modified or deleted. */
  onRepository(repo: Repository, deleted: boolean): void {
    const name = repo.metadata?.name as string | undefined;
    if (name === undefined) return;
    if (deleted) {
      this.#repositories.delete(name, resourceVersionOf(repo));
      this.#applied.delete(name);
      this.scheduleFlush();
    } else this.#repositories.set(name, repo, resourceVersionOf(repo));
  }

  /**
   * Merges a fresh pod list into the index (the expiry sweep's live list): newer than what the index holds for the
   * pods it lists, without dropping pods the index learnt about meanwhile (see observed.ts).
   */
  refreshPods(pods: Iterable<PodLike>): void {
    for (const pod of pods) this.#pods.set(namespacedName(pod), slimPod(pod), resourceVersionOf(pod));
    this.scheduleFlush();
  }

  /** Lists everything afresh and recomputes. Rejects when a list fails (the caller retries). */
  async resync(): Promise<void> {
    const { kube } = this.deps;
    const maps = [this.#pods, this.#cachedImages, this.#repositories] as const;
    for (const map of maps) map.beginResync();
    let lists;
    try {
      lists = await Promise.all([
        kube.listManagedPods(),
        kube.listServiceAccounts(),
        kube.listCachedImages(),
        kube.listRepositories(),
      ]);
    } catch (err) {
      for (const map of maps) map.abortResync();
      throw err;
    }
    const [pods, accounts, cachedImages, repositories] = lists;
    this.#pods.finishResync(
      pods.map(pod => ({ key: namespacedName(pod), value: slimPod(pod), rv: resourceVersionOf(pod) })),
    );
    this.#cachedImages.finishResync(byName(cachedImages));
    this.#repositories.finishResync(byName(repositories));
    this.#accounts.clear();
    for (const sa of accounts) this.#accounts.set(namespacedName(sa), sa);
    // Re-apply every Repository once per resync: repairs edits of kuik's entries (a no-op apply costs nothing).
    this.#applied.clear();
    await this.flush();
  }

  /** Recomputes after {@link TrackerDeps.debounceMs}, once for a burst of calls. */
  scheduleFlush(delayMs = this.deps.debounceMs): void {
    if (this.#cancelFlush !== undefined) return;
    this.#cancelFlush = this.deps.scheduler.after(delayMs, () => {
      this.#cancelFlush = undefined;
      this.flush().catch((err: unknown) => this.deps.log.error({ err }, "tracking flush failed"));
    });
  }

  /** Recomputes and writes now; a call during a flush runs once more after it. */
  async flush(): Promise<void> {
    if (this.#flushing !== undefined) {
      this.#again = true;
      return this.#flushing;
    }
    this.#flushing = this.#flushOnce().finally(() => {
      this.#flushing = undefined;
    });
    await this.#flushing;
    if (this.#again) {
      this.#again = false;
      await this.flush();
    }
  }

  /** Stops the pending debounced flush. */
  stop(): void {
    this.#cancelFlush?.();
    this.#cancelFlush = undefined;
  }

  async #flushOnce(): Promise<void> {
    await this.#fetchMissingAccounts();
    const plan: TrackingPlan = planTracking({
      pods: this.#pods.map.values(),
      serviceAccounts: [...this.#accounts.values()].filter((sa): sa is ServiceAccountLike => sa !== null),
      cachedImages: this.#cachedImages.map,
      repositories: this.#repositories.map,
      appliedRepositories: this.#applied,
      now: this.deps.clock.now(),
      expiryDelayMs: this.deps.expiryDelayMs,
      admitted: this.deps.admitted,
    });
    for (const problem of plan.problems) this.deps.log.warn(problem, "pod image not tracked");
    const failures = await writePlan(plan, {
      kube: this.deps.kube,
      log: this.deps.log,
      cachedImages: this.#cachedImages,
      applied: this.#applied,
    });
    if (failures > 0) this.scheduleFlush(RETRY_FLUSH_MS);
  }

  /** Reads the service accounts of new pods (the resync lists them all). */
  async #fetchMissingAccounts(): Promise<void> {
    for (const pod of this.#pods.map.values()) {
      const name = pod.spec?.serviceAccountName;
      const namespace = pod.metadata?.namespace;
      if (!name || !namespace || this.#accounts.has(`${namespace}/${name}`)) continue;
      try {
        this.#accounts.set(
          `${namespace}/${name}`,
          (await this.deps.kube.getServiceAccount(namespace, name)) ?? null,
        );
      } catch (err) {
        // Not retried before the next resync (which lists them all): one warning, not one per flush.
        this.#accounts.set(`${namespace}/${name}`, null);
        this.deps.log.warn({ namespace, name, error: errorMessage(err) }, "cannot read service account");
      }
    }
  }
}

function byName<T extends { metadata?: { name?: string; resourceVersion?: unknown } }>(
  items: T[],
): { key: string; value: T; rv: number }[] {
  return items.flatMap(item =>
    item.metadata?.name ? [{ key: item.metadata.name, value: item, rv: resourceVersionOf(item) }] : [],
  );
}

/** The fields of a pod the tracking and the admission rules read, kept instead of the whole object. */
export function slimPod(pod: PodLike): PodLike {
  const spec = pod.spec ?? {};
  const pick = (c: ContainerLike): ContainerLike => ({
    name: c.name,
    image: c.image ?? "",
    ...(c.imagePullPolicy ? { imagePullPolicy: c.imagePullPolicy } : {}),
  });
  const optOut = pod.metadata?.labels?.[LABEL_IMAGE_CACHING_POLICY];
  const metadata: NonNullable<PodLike["metadata"]> = {
    name: pod.metadata?.name ?? "",
    namespace: pod.metadata?.namespace ?? "",
    ...(optOut !== undefined ? { labels: { [LABEL_IMAGE_CACHING_POLICY]: optOut } } : {}),
    ...(pod.metadata?.deletionTimestamp ? { deletionTimestamp: pod.metadata.deletionTimestamp } : {}),
  };
  return {
    metadata,
    spec: {
      containers: (spec.containers ?? []).map(pick),
      initContainers: (spec.initContainers ?? []).map(pick),
      ephemeralContainers: (spec.ephemeralContainers ?? []).map(pick),
      imagePullSecrets: (spec.imagePullSecrets ?? []).map(s => ({ name: s.name ?? "" })),
      ...(spec.serviceAccountName ? { serviceAccountName: spec.serviceAccountName } : {}),
    },
  };
}
