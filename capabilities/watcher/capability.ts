/**
 * Watch binding table of the watcher. Every callback only hands the object to the {@link WatchHandlers} (the
 * controller): it never blocks Pepr's per-object queue with a copy, never throws (a throw would be logged and the
 * event lost), and the controller reads objects fresh before writing.
 *
 * Pepr's chain has no "any event", so each kind has a created-or-updated and a deleted binding (each opens its own
 * list+watch; the cost is a second watch cache of the managed pods).
 */
import { Capability, a } from "pepr";
import type { Logger } from "pino";
import { CachedImage, Repository } from "../crd";
import { LABEL_MANAGED } from "../shared/labels";
import type { WatchHandlers } from "./controller";

/** The cached-images capability, delivering events to `handlers`. */
export function createCachedImages(handlers: WatchHandlers): Capability {
  const capability = new Capability({
    name: "cached-images",
    description: "Tracks the images managed pods use, caches them, expires unused ones",
  });
  bindPods(capability, handlers);
  bindCachedImages(capability, handlers);
  bindRepositories(capability, handlers);
  return capability;
}

/**
 * The callback of a binding: logs the event at debug level and hands it to `handle`. Pepr 1.1.4 has no binding for
 * every phase at once, so each kind needs a created-or-updated and a deleted binding, both through this.
 */
function relay<T extends { metadata?: { name?: string } }>(
  kind: string,
  handle: (obj: T, phase: string) => void,
): (obj: T, phase: string, logger?: Logger) => void {
  return (obj, phase, logger) => {
    logger?.debug({ kind, name: obj.metadata?.name, phase }, "watch event");
    handle(obj, phase);
  };
}

function bindPods({ When }: Capability, handlers: WatchHandlers): void {
  const onPod = relay<a.Pod>("Pod", (pod, phase) => handlers.onPod(pod, phase));
  // Managed pods created or updated: track the images they use.
  When(a.Pod).IsCreatedOrUpdated().WithLabel(LABEL_MANAGED).Alias("track-pods").Watch(onPod);
  // Managed pods deleted: their images lose a user.
  When(a.Pod).IsDeleted().WithLabel(LABEL_MANAGED).Alias("untrack-pods").Watch(onPod);
}

function bindCachedImages({ When }: Capability, handlers: WatchHandlers): void {
  const onCachedImage = relay<CachedImage>("CachedImage", (ci, phase) => handlers.onCachedImage(ci, phase));
  // CachedImages: copy into the cache, keep the status, run kuik's finalizer.
  When(CachedImage).IsCreatedOrUpdated().Alias("cache-images").Reconcile(onCachedImage);
  // CachedImages gone: forget them (the tracker recreates those still in use).
  When(CachedImage).IsDeleted().Alias("forget-cached-images").Watch(onCachedImage);
}

function bindRepositories({ When }: Capability, handlers: WatchHandlers): void {
  const onRepository = relay<Repository>("Repository", (repo, phase) => handlers.onRepository(repo, phase));
  // Repositories: pull secrets for copies and for the proxy credentials Secret.
  When(Repository).IsCreatedOrUpdated().Alias("track-repositories").Watch(onRepository);
  // Repositories deleted: drop their credentials.
  When(Repository).IsDeleted().Alias("forget-repositories").Watch(onRepository);
}
