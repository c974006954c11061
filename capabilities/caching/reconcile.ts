// capabilities/caching/: one caching pass per CachedImage, its status, and kuik's finalizer.
/**
 * One caching pass over a CachedImage, read fresh: add kuik's finalizer, check the cache registry (HEAD), copy
 * from the origin when the image is missing, stale or a refresh is asked for, and write the outcome as ONE status
 * patch (plus throttled progress patches during a copy, see progress.ts). Failures set `ErrImagePull`,
 * `retryCount`, `nextRetry` and `lastError`; the caller requeues at `nextRetry` (Pepr never retries a failed Reconcile).
 *
 * Copy decision, in order: retry backoff not elapsed (and no forced refresh) → wait; cached with the digest the
 * status claims → Ready (no copy); forced refresh (`cachedimage.kuik.enix.io/forceUpdate` or a Repository
 * `updateInterval`) → HEAD the origin and copy only if its digest changed; otherwise copy.
 */
import type { Keyring } from "../../registry-client/src/keyring";
import type { ImageReference } from "../../registry-client/src/types";
import type { CachedImage } from "../crd";
import { involved, type EventSpec } from "../kube/events";
import { annotationPath } from "../kube/patch-ops";
import type { CopyOutcome, ManifestInfo } from "../kube/ports";
import { normalizeDigest, readStatus, readyCondition, type CacheStatus } from "../shared/cached-image-status";
import { errorMessage } from "../shared/errors";
import { ANNOTATION_FORCE_UPDATE, FORCE_UPDATE_VALUE } from "../shared/labels";
import type { CacheDeps, PassResult } from "./cache-deps";
import { cacheReference, sourceReference } from "./cache-reference";
import { addFinalizerOps, finalizeCachedImage, hasFinalizer } from "./finalizer";
import { ProgressReporter } from "./progress";
import { retryDelayMs, statusPatch } from "./status";

export type { CacheDeps, PassResult } from "./cache-deps";

/** A pass's result before it is written. */
interface Step {
  status: CacheStatus;
  /** The status on the server before the final patch, when progress patches changed it during the pass. */
  base?: CacheStatus;
  events: EventSpec[];
  requeueAfterMs?: number;
}

/**
 * Reconciles the CachedImage `name`. Never throws for expected failures (they become status); rejects only when
 * the API server cannot be reached, and the caller then requeues.
 */
export async function reconcileCachedImage(name: string, deps: CacheDeps): Promise<PassResult> {
  const ci = await deps.kube.getCachedImage(name);
  if (ci === undefined) return {};
  if (ci.metadata?.deletionTimestamp) return finalizeCachedImage(ci, deps);
  if (!hasFinalizer(ci)) await deps.kube.patchCachedImage(name, addFinalizerOps(ci));
  const current = readStatus(ci);
  const now = deps.clock.now();
  const forced = ci.metadata?.annotations?.[ANNOTATION_FORCE_UPDATE] === FORCE_UPDATE_VALUE;
  const waitMs = current.nextRetry ? Date.parse(current.nextRetry) - now.getTime() : 0;
  if (current.phase === "ErrImagePull" && waitMs > 0 && !forced) return { requeueAfterMs: waitMs };
  const ref = sourceReference(ci);
  const step =
    "error" in ref
      ? failed(ci, current, undefined, `invalid sourceImage: ${ref.error}`, deps)
      : await cachePass(ci, ref, current, forced, deps);
  const patch = statusPatch(step.base ?? current, step.status);
  if (patch !== undefined) await deps.kube.patchCachedImageStatus(name, patch);
  for (const event of step.events) await deps.events.record(involved(ci), event);
  if (forced) await clearForceUpdate(ci, deps);
  return step.requeueAfterMs === undefined ? {} : { requeueAfterMs: step.requeueAfterMs };
}

async function cachePass(
  ci: CachedImage,
  ref: ImageReference,
  current: CacheStatus,
  forced: boolean,
  deps: CacheDeps,
): Promise<Step> {
  const destination = cacheReference(ref, deps.settings.registryEndpoint);
  let cached: ManifestInfo | undefined;
  let keyring: Keyring;
  try {
    cached = await deps.registry.headCache(destination);
    const claimed = normalizeDigest(current.digest);
    if (cached && !forced && (claimed === undefined || claimed === cached.digest)) {
      return { status: ready(ci, current, { isCached: true, digest: cached.digest }, deps), events: [] };
    }
    keyring = await deps.keyringFor(ref);
  } catch (err) {
    return failed(ci, current, cached, errorMessage(err), deps);
  }
  if (cached && forced) {
    const refreshed = await refreshCheck(ci, ref, current, cached, keyring, deps);
    if (refreshed !== undefined) return refreshed;
  }
  return copy(ci, { ref, destination, cached }, current, keyring, deps);
}

/** Forced refresh of a cached image: `undefined` when the origin changed and a copy is due. */
async function refreshCheck(
  ci: CachedImage,
  ref: ImageReference,
  current: CacheStatus,
  cached: ManifestInfo,
  keyring: Keyring,
  deps: CacheDeps,
): Promise<Step | undefined> {
  const now = deps.clock.now().toISOString();
  try {
    const upstream = await deps.registry.headUpstream(ref, keyring);
    if (upstream.digest !== cached.digest) return undefined;
    const fields = { isCached: true, digest: cached.digest, upstreamDigest: upstream.digest, upToDate: true };
    const status = ready(
      ci,
      current,
      { ...fields, availableUpstream: true, lastSeenUpstream: now, lastSync: now },
      deps,
    );
    return { status, events: [] };
  } catch (err) {
    // The origin is unreachable: the cached copy stays Ready, the check is recorded.
    const message = `origin check failed: ${errorMessage(err)}`;
    const status = ready(ci, current, { isCached: true, availableUpstream: false, lastSync: now }, deps);
    return { status: { ...status, lastError: message }, events: [] };
  }
}

/** The image a copy is about: origin, cache reference, and what the cache held before. */
interface CopyTarget {
  ref: ImageReference;
  destination: ImageReference;
  cached: ManifestInfo | undefined;
}

async function copy(
  ci: CachedImage,
  { ref, destination, cached }: CopyTarget,
  current: CacheStatus,
  keyring: Keyring,
  deps: CacheDeps,
): Promise<Step> {
  await deps.events.record(involved(ci), {
    type: "Normal",
    reason: "Caching",
    message: `Start caching image ${ref.canonical}`,
  });
  const progress = new ProgressReporter(ci, deps);
  await progress.start();
  const started = deps.clock.now().getTime();
  try {
    const result = await deps.registry.copyToCache(ref, destination, {
      keyring,
      onProgress: p => progress.update(p),
    });
    await progress.finish();
    deps.metrics.copy((deps.clock.now().getTime() - started) / 1000, result.bytesCopied, true);
    deps.metrics.cachingRequest(true, ref.registry);
    deps.metrics.putInCache();
    const status = ready(ci, current, copiedFields(result, deps.clock.now()), deps);
    const event: EventSpec = { type: "Normal", reason: "Cached", message: `Image ${ref.canonical} cached` };
    return { status, base: { ...current, ...progress.written }, events: [event] };
  } catch (err) {
    await progress.finish();
    deps.metrics.copy((deps.clock.now().getTime() - started) / 1000, 0, false);
    deps.metrics.cachingRequest(false, ref.registry);
    return {
      ...failed(ci, current, cached, errorMessage(err), deps),
      base: { ...current, ...progress.written },
    };
  }
}

/** Status fields after a successful copy. */
function copiedFields(result: CopyOutcome, now: Date): CacheStatus {
  const at = now.toISOString();
  return {
    isCached: true,
    digest: result.digest,
    upstreamDigest: result.digest,
    upToDate: true,
    availableUpstream: true,
    lastSeenUpstream: at,
    lastSync: at,
    lastSuccessfulPull: at,
    progress: { available: result.bytesTotal, total: result.bytesTotal },
  };
}

/** The Ready status: `fields` over the current status, retry state cleared. */
function ready(ci: CachedImage, current: CacheStatus, fields: CacheStatus, deps: CacheDeps): CacheStatus {
  const generation = ci.metadata?.generation as number | undefined;
  const next: CacheStatus = { ...current, ...fields, phase: "Ready", retryCount: 0 };
  delete next.nextRetry;
  if (fields.lastError === undefined) delete next.lastError;
  if (next.digest !== undefined && next.upstreamDigest !== undefined) {
    next.upToDate = normalizeDigest(next.digest) === normalizeDigest(next.upstreamDigest);
  }
  if (generation !== undefined) next.observedGeneration = generation;
  next.conditions = readyCondition(current.conditions, "Ready", "image cached", deps.clock.now(), generation);
  return next;
}

/** A failed pass: `ErrImagePull`, one more retry, next attempt after the backoff. */
function failed(
  ci: CachedImage,
  current: CacheStatus,
  cached: ManifestInfo | undefined,
  message: string,
  deps: CacheDeps,
): Step {
  const now = deps.clock.now();
  const generation = ci.metadata?.generation as number | undefined;
  const retryCount = (current.retryCount ?? 0) + 1;
  const delay = retryDelayMs(retryCount, deps.settings.retryBaseMs, deps.settings.retryMaxMs);
  const status: CacheStatus = {
    ...current,
    phase: "ErrImagePull",
    isCached: cached !== undefined,
    retryCount,
    nextRetry: new Date(now.getTime() + delay).toISOString(),
    lastError: message,
    lastSync: now.toISOString(),
    conditions: readyCondition(current.conditions, "ErrImagePull", message, now, generation),
  };
  if (generation !== undefined) status.observedGeneration = generation;
  const source = ci.spec?.sourceImage ?? "";
  const event: EventSpec = {
    type: "Warning",
    reason: "CacheFailed",
    message: `Failed to cache ${source}: ${message}`,
  };
  return { status, events: [event], requeueAfterMs: delay };
}

/** Removes the consumed `forceUpdate` annotation (only if it still says so). */
async function clearForceUpdate(ci: CachedImage, deps: CacheDeps): Promise<void> {
  const path = annotationPath(ANNOTATION_FORCE_UPDATE);
  try {
    await deps.kube.patchCachedImage(ci.metadata?.name as string, [
      { op: "test", path, value: FORCE_UPDATE_VALUE },
      { op: "remove", path },
    ]);
  } catch (err) {
    deps.log.debug({ err, cachedImage: ci.metadata?.name }, "forceUpdate annotation already gone");
  }
}
