/**
 * The caching pass's status arithmetic, pure: the retry backoff, and the diff that turns a desired status into one
 * merge patch (or none).
 */
import { CACHE_STATUS_KEYS, sameJson, type CacheStatus } from "../shared/cached-image-status";

/** Delay before retry number `retryCount` (1 = first retry): base × 2^(n−1), capped. */
export function retryDelayMs(retryCount: number, baseMs: number, maxMs: number): number {
  const exponent = Math.min(Math.max(retryCount - 1, 0), 30);
  return Math.min(maxMs, baseMs * 2 ** exponent);
}

/**
 * The merge patch turning `current` into `next` for the caching-owned fields: changed fields with their new
 * value, removed ones as `null`; `undefined` when nothing changed (then no request is made).
 */
export function statusPatch(current: CacheStatus, next: CacheStatus): Record<string, unknown> | undefined {
  const patch: Record<string, unknown> = {};
  for (const key of CACHE_STATUS_KEYS) {
    const before = current[key];
    const after = next[key];
    if (sameJson(before, after)) continue;
    patch[key] = after === undefined ? null : after;
  }
  return Object.keys(patch).length > 0 ? patch : undefined;
}
