/**
 * Expiry rules, pure: when an unused image gets `spec.expiresAt`, when it loses it, the JSON Patch that writes the
 * decision, and when an expired image must be deleted. Tracking applies {@link computeExpiry}; the sweep
 * (sweep.ts) applies {@link shouldDelete}.
 */
import type { JsonPatchOp } from "../kube/ports";

/** The CachedImage fields the expiry rules read (a generated `CachedImage` fits). */
export interface ExpiringImage {
  readonly metadata?: { readonly deletionTimestamp?: Date | string };
  readonly spec?: { readonly retain?: boolean; readonly expiresAt?: Date | string };
}

/** What to do with `spec.expiresAt`. */
export type ExpiryDecision = { action: "set"; expiresAt: string } | { action: "clear" } | { action: "keep" };

/** Set and not `null` (the API sends `null` where the types say optional). */
function isSet<T>(value: T | null | undefined): value is T {
  return value !== undefined && value !== null;
}

function timeOf(value: Date | string | undefined): number | undefined {
  if (!isSet(value)) return undefined;
  const t = value instanceof Date ? value.getTime() : Date.parse(value);
  return Number.isNaN(t) ? undefined : t;
}

/**
 * Expiry bookkeeping: an unused, non-retained image gets `expiresAt` = now + delay, once (a later pass does
 * not push it back); a used or retained one has it cleared. An unparsable `expiresAt` is set afresh.
 */
export function computeExpiry(
  ci: ExpiringImage,
  usedByCount: number,
  now: Date,
  delayMs: number,
): ExpiryDecision {
  const current = timeOf(ci.spec?.expiresAt);
  if (usedByCount > 0 || ci.spec?.retain === true) {
    return isSet(ci.spec?.expiresAt) ? { action: "clear" } : { action: "keep" };
  }
  if (current !== undefined) return { action: "keep" };
  return { action: "set", expiresAt: new Date(now.getTime() + delayMs).toISOString() };
}

/**
 * Whether a CachedImage must be deleted now: expired, not retained, not already being deleted, and used by no
 * pod according to `liveUsedByCount`. That count must be taken at deletion time from the live pods, never from
 * `status.usedBy` or an earlier pass: v1 deleted images that had become used again (kube-image-keeper issue #540; docs/v1-differences.md B5).
 */
export function shouldDelete(ci: ExpiringImage, liveUsedByCount: number, now: Date): boolean {
  if (isSet(ci.metadata?.deletionTimestamp)) return false;
  if (ci.spec?.retain === true || liveUsedByCount > 0) return false;
  const expiresAt = timeOf(ci.spec?.expiresAt);
  return expiresAt !== undefined && expiresAt <= now.getTime();
}

/** `spec.expiresAt` set, or removed (guarded by a `test`, so a value changed meanwhile is left alone). */
export function expiryOps(entry: {
  decision: Exclude<ExpiryDecision, { action: "keep" }>;
  current?: string;
}): JsonPatchOp[] {
  if (entry.decision.action === "set") {
    return [{ op: "add", path: "/spec/expiresAt", value: entry.decision.expiresAt }];
  }
  const test: JsonPatchOp[] =
    entry.current === undefined ? [] : [{ op: "test", path: "/spec/expiresAt", value: entry.current }];
  return [...test, { op: "remove", path: "/spec/expiresAt" }];
}
