/**
 * kuik's own finalizer `cachedimage.kuik.enix.io/finalizer`, handled in the caching Reconcile when
 * `deletionTimestamp` is set (not with Pepr's `.Finalize()`, which injects `pepr.dev/finalizer` through the
 * admission webhook: with `failurePolicy: Ignore` a webhook outage would create objects without it, and its
 * removal patch has no `test`). The same key as kuik v1 means objects v1 created are cleaned up too.
 *
 * Cleanup is a table of idempotent steps; a pass may run any number of times (Pepr and the API server re-deliver
 * events of terminating objects, docs/limitations.md B5): a manifest already gone (404) counts as removed, and the
 * finalizer is removed last, with a `test` guarding its index. Any failing step keeps the finalizer, records
 * `CleanupFailed`, and the pass is retried with backoff.
 */
import { isRegistryError } from "../../registry-client/src/errors";
import type { CachedImage } from "../crd";
import { involved } from "../kube/events";
import { removeFinalizerOps } from "../kube/patch-ops";
import { isConflict, type JsonPatchOp } from "../kube/ports";
import { normalizeDigest, readStatus, readyCondition } from "../shared/cached-image-status";
import { errorMessage } from "../shared/errors";
import { FINALIZER_CACHED_IMAGE } from "../shared/labels";
import type { CacheDeps, PassResult } from "./cache-deps";
import { cacheReference, sourceReference } from "./cache-reference";
import { retryDelayMs, statusPatch } from "./status";

/** One cleanup step: resolves with a note for the `CleanedUp` event, rejects to keep the finalizer. */
interface CleanupStep {
  name: string;
  run(ci: CachedImage, deps: CacheDeps): Promise<string>;
}

/** Requeue delay after a conflicting finalizer patch (someone else changed the list: re-read and retry). */
const CONFLICT_RETRY_MS = 1000;

const CLEANUP_STEPS: readonly CleanupStep[] = [{ name: "remove-from-cache", run: removeFromCache }];

/** Runs the cleanup of a terminating CachedImage and removes kuik's finalizer. Idempotent. */
export async function finalizeCachedImage(ci: CachedImage, deps: CacheDeps): Promise<PassResult> {
  if (!hasFinalizer(ci)) return {};
  const current = readStatus(ci);
  const name = ci.metadata?.name as string;
  const waitMs = current.nextRetry ? Date.parse(current.nextRetry) - deps.clock.now().getTime() : 0;
  if (current.phase === "Terminating" && waitMs > 0) return { requeueAfterMs: waitMs };
  if (current.phase !== "Terminating") {
    await deps.events.record(involved(ci), {
      type: "Normal",
      reason: "CleaningUp",
      message: `Removing ${ci.spec?.sourceImage ?? name} from the cache`,
    });
  }
  const notes: string[] = [];
  for (const step of CLEANUP_STEPS) {
    try {
      notes.push(await step.run(ci, deps));
    } catch (err) {
      return cleanupFailed(ci, step.name, errorMessage(err), deps);
    }
  }
  try {
    await deps.kube.patchCachedImage(name, removeFinalizerOps(ci, FINALIZER_CACHED_IMAGE));
  } catch (err) {
    if (isConflict(err)) return { requeueAfterMs: CONFLICT_RETRY_MS };
    throw err;
  }
  await deps.events.record(involved(ci), { type: "Normal", reason: "CleanedUp", message: notes.join("; ") });
  return {};
}

/**
 * Deletes the image's manifest from the cache by digest, unless a pod uses it right now (live count: the object
 * may be deleted by hand, or a pod may have appeared since the expiry check; the tracker then recreates the
 * CachedImage and finds the image still cached) or another CachedImage's cached image is the same manifest
 * (deleting by digest removes every tag pointing at it).
 */
async function removeFromCache(ci: CachedImage, deps: CacheDeps): Promise<string> {
  const ref = sourceReference(ci);
  if ("error" in ref) return "nothing to remove: invalid sourceImage";
  const users = await deps.liveUsers(ci.metadata?.name as string);
  if (users > 0) return `kept in the cache: used by ${users} pod(s)`;
  const destination = cacheReference(ref, deps.settings.registryEndpoint);
  const digest =
    ref.digest ??
    normalizeDigest(readStatus(ci).digest) ??
    (await deps.registry.headCache(destination))?.digest;
  if (digest === undefined) return "already absent from the cache";
  if (deps.digestShared(ci.metadata?.name as string, destination.name, digest)) {
    return `kept in the cache: ${digest} is also another CachedImage's`;
  }
  try {
    const removed = await deps.registry.deleteFromCache(destination, digest);
    if (!removed) return "already absent from the cache";
  } catch (err) {
    // A registry without REGISTRY_STORAGE_DELETE_ENABLED answers 405: retrying cannot help, and keeping the
    // finalizer forever would block the deletion. The manifest stays; say so loudly.
    if (!isRegistryError(err, "UNSUPPORTED")) throw err;
    deps.log.warn({ err, cachedImage: ci.metadata?.name }, "cache registry refuses deletes; manifest kept");
    return `kept in the cache: the registry refuses deletes (${errorMessage(err)})`;
  }
  deps.metrics.removedFromCache();
  return `removed ${digest} from the cache`;
}

async function cleanupFailed(
  ci: CachedImage,
  step: string,
  message: string,
  deps: CacheDeps,
): Promise<PassResult> {
  const now = deps.clock.now();
  const current = readStatus(ci);
  // Copy retries before the deletion do not count: the cleanup backoff starts over.
  const retryCount = (current.phase === "Terminating" ? (current.retryCount ?? 0) : 0) + 1;
  const delay = retryDelayMs(retryCount, deps.settings.retryBaseMs, deps.settings.retryMaxMs);
  const text = `cleanup step ${step} failed: ${message}`;
  const next = {
    ...current,
    phase: "Terminating" as const,
    retryCount,
    nextRetry: new Date(now.getTime() + delay).toISOString(),
    lastError: text,
    conditions: readyCondition(current.conditions, "Terminating", text, now, undefined),
  };
  const patch = statusPatch(current, next);
  if (patch !== undefined) await deps.kube.patchCachedImageStatus(ci.metadata?.name as string, patch);
  await deps.events.record(involved(ci), { type: "Warning", reason: "CleanupFailed", message: text });
  return { requeueAfterMs: delay };
}

/** Whether kuik's finalizer is on the object. */
export function hasFinalizer(ci: CachedImage): boolean {
  return ((ci.metadata?.finalizers as string[] | undefined) ?? []).includes(FINALIZER_CACHED_IMAGE);
}

/**
 * JSON Patch adding kuik's finalizer, guarded by a `test` so a concurrent change of the finalizer list fails
 * (422) instead of being overwritten (Pepr's own finalizer patch has no such guard, docs/limitations.md B5).
 */
export function addFinalizerOps(ci: CachedImage): JsonPatchOp[] {
  const finalizers = (ci.metadata?.finalizers as string[] | undefined) ?? [];
  if (finalizers.length === 0) {
    return [
      { op: "test", path: "/metadata/resourceVersion", value: ci.metadata?.resourceVersion },
      { op: "add", path: "/metadata/finalizers", value: [FINALIZER_CACHED_IMAGE] },
    ];
  }
  return [
    { op: "test", path: "/metadata/finalizers", value: finalizers },
    { op: "add", path: "/metadata/finalizers/-", value: FINALIZER_CACHED_IMAGE },
  ];
}
