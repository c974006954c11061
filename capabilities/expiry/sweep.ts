// capabilities/expiry/: when an unused image expires (rules.ts) and its deletion (sweep.ts).
/**
 * Deletion of expired CachedImages. The tracker sets `spec.expiresAt` on unused, unretained images and clears it
 * when they are used again; the sweep deletes the ones past it. Right before deleting, the users are counted
 * again from a FRESH list of pods (never the watch cache, never `status.usedBy`): kuik v1 deleted images that had
 * become used again (kube-image-keeper issue #540; docs/v1-differences.md B5). The finalizer counts once more before removing the manifest.
 */
import type { Logger } from "pino";
import type { CachedImage } from "../crd";
import { involved, type EventSink } from "../kube/events";
import { KubeApiError, type Clock, type KubePort } from "../kube/ports";
import { errorMessage } from "../shared/errors";
import { desiredCachedImages, type AdmittedImages, type DesiredCachedImages } from "../shared/pod-images";
import type { PodLike } from "../shared/pods";
import { shouldDelete } from "./rules";

/** Fresh pod lists, shared by callers within `maxAgeMs` (one list per sweep, not one per image). */
export class LivePods {
  #inflight: Promise<LiveView> | undefined;
  #last: { at: number; view: LiveView } | undefined;

  constructor(
    private readonly kube: Pick<KubePort, "listManagedPods">,
    private readonly clock: Clock,
    /** The admission rules, re-applied to every pod (shared/pod-images.ts). */
    private readonly admitted: AdmittedImages,
    private readonly maxAgeMs = 2000,
  ) {}

  /** The pods and the images they use, listed at most `maxAgeMs` ago (or now, when `fresh`). */
  async view(fresh = false): Promise<LiveView> {
    const now = this.clock.now().getTime();
    if (!fresh && this.#last !== undefined && now - this.#last.at <= this.maxAgeMs) return this.#last.view;
    this.#inflight ??= this.#list(now).finally(() => {
      this.#inflight = undefined;
    });
    return this.#inflight;
  }

  /** Number of live pods using the CachedImage `name`; `fresh` lists again (concurrent callers share the list). */
  async usersOf(name: string, fresh = false): Promise<number> {
    return (await this.view(fresh)).desired.cachedImages.get(name)?.usedBy.length ?? 0;
  }

  async #list(at: number): Promise<LiveView> {
    const pods = await this.kube.listManagedPods();
    const view = { pods, desired: desiredCachedImages(pods, { admitted: this.admitted }) };
    this.#last = { at, view };
    return view;
  }
}

/** A fresh pod list and what it uses. */
export interface LiveView {
  pods: PodLike[];
  desired: DesiredCachedImages;
}

/** What {@link sweepExpired} needs. */
export interface SweepDeps {
  kube: Pick<KubePort, "getCachedImage" | "deleteCachedImage">;
  clock: Clock;
  events: EventSink;
  live: LivePods;
  log: Logger;
}

/** Result of a sweep. */
export interface SweepResult {
  deleted: string[];
  /** Expired but in use according to the fresh count (the tracker clears their expiry). */
  inUse: string[];
  /** The fresh list taken, if any: the tracker's index is refreshed from it. */
  view?: LiveView;
}

/** Deletes the expired, unused, unretained CachedImages among `candidates` (the tracker's observed ones). */
export async function sweepExpired(candidates: Iterable<CachedImage>, deps: SweepDeps): Promise<SweepResult> {
  const now = deps.clock.now();
  // Prefilter on time and retain only; users are counted below, from the fresh list.
  const due = [...candidates].filter(ci => shouldDelete(ci, 0, now));
  if (due.length === 0) return { deleted: [], inUse: [] };
  const view = await deps.live.view(true);
  const result: SweepResult = { deleted: [], inUse: [], view };
  for (const candidate of due) {
    const name = candidate.metadata?.name as string;
    const ci = await deps.kube.getCachedImage(name);
    if (ci === undefined) continue;
    const users = view.desired.cachedImages.get(name)?.usedBy.length ?? 0;
    if (!shouldDelete(ci, users, deps.clock.now())) {
      if (users > 0) result.inUse.push(name);
      continue;
    }
    if (await deleteExpired(ci, deps)) result.deleted.push(name);
  }
  return result;
}

async function deleteExpired(ci: CachedImage, deps: SweepDeps): Promise<boolean> {
  const name = ci.metadata?.name as string;
  const expiresAt = String(ci.spec?.expiresAt);
  await deps.events.record(involved(ci), {
    type: "Normal",
    reason: "Expiring",
    message: `Image ${ci.spec?.sourceImage ?? name} unused and past its expiry date ${expiresAt}: deleting it`,
  });
  try {
    // Only the version just read and judged: if it changed since (retain set, expiry cleared, used again), the
    // API server refuses (409) and the next sweep decides again.
    await deps.kube.deleteCachedImage(name, ci.metadata?.resourceVersion as string | undefined);
  } catch (err) {
    if (err instanceof KubeApiError && err.status === 409) {
      deps.log.info(
        { cachedImage: name },
        "expired image changed since it was judged; left for the next sweep",
      );
      return false;
    }
    const message = `Cannot delete expired image: ${errorMessage(err)}`;
    await deps.events.record(involved(ci), { type: "Warning", reason: "ExpiringFailed", message });
    deps.log.warn({ cachedImage: name, error: errorMessage(err) }, "expired image not deleted");
    return false;
  }
  await deps.events.record(involved(ci), {
    type: "Normal",
    reason: "Expired",
    message: "Expired image deleted",
  });
  deps.log.info({ cachedImage: name, expiresAt }, "expired image deleted");
  return true;
}
