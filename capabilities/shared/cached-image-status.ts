/**
 * A CachedImage's status as it travels on the wire, read as the caching side owns it, and the Ready condition: read
 * by the caching pass, the Repository maintenance and the watcher's metrics.
 */
import type { CachedImage } from "../crd";

/** Phases of a CachedImage (kuik v1's). */
export type Phase = "Synchronizing" | "Pulling" | "Ready" | "ErrImagePull" | "Terminating";

/** A status condition as it travels on the wire (times are RFC 3339 strings). */
export interface WireCondition {
  type: string;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

/** The CachedImage status fields the caching side owns, as on the wire. `usedBy` belongs to the tracker. */
export interface CacheStatus {
  phase?: Phase;
  isCached?: boolean;
  digest?: string;
  upstreamDigest?: string;
  upToDate?: boolean;
  availableUpstream?: boolean;
  lastSeenUpstream?: string;
  lastSync?: string;
  lastSuccessfulPull?: string;
  progress?: { available?: number; total?: number };
  retryCount?: number;
  nextRetry?: string;
  lastError?: string;
  observedGeneration?: number;
  conditions?: WireCondition[];
}

/** The status fields the caching side owns. */
export const CACHE_STATUS_KEYS = [
  "phase",
  "isCached",
  "digest",
  "upstreamDigest",
  "upToDate",
  "availableUpstream",
  "lastSeenUpstream",
  "lastSync",
  "lastSuccessfulPull",
  "progress",
  "retryCount",
  "nextRetry",
  "lastError",
  "observedGeneration",
  "conditions",
] as const satisfies readonly (keyof CacheStatus)[];

/** The status of a CachedImage as received (the generated types say `Date`; JSON gives strings). */
export function readStatus(ci: CachedImage): CacheStatus {
  const status = (ci.status ?? {}) as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const key of CACHE_STATUS_KEYS)
    if (status[key] !== undefined && status[key] !== null) out[key] = status[key];
  return out as CacheStatus;
}

/**
 * The `Ready` condition for a phase; `lastTransitionTime` is kept when the condition's status does not change.
 */
export function readyCondition(
  previous: readonly WireCondition[] | undefined,
  phase: Phase,
  message: string,
  now: Date,
  generation: number | undefined,
): WireCondition[] {
  const status = phase === "Ready" ? "True" : "False";
  const reason = phase === "Ready" ? "Cached" : phase;
  const old = previous?.find(c => c.type === "Ready");
  const condition: WireCondition = {
    type: "Ready",
    status,
    reason,
    message,
    lastTransitionTime: old?.status === status ? old.lastTransitionTime : now.toISOString(),
  };
  if (generation !== undefined) condition.observedGeneration = generation;
  return [...(previous ?? []).filter(c => c.type !== "Ready"), condition];
}

/** Deep equality of JSON values, insensitive to key order (the API server returns keys sorted). */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a).filter(k => (a as Record<string, unknown>)[k] !== undefined);
  const kb = Object.keys(b).filter(k => (b as Record<string, unknown>)[k] !== undefined);
  if (ka.length !== kb.length) return false;
  return ka.every(k => sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/** `sha256:<hex>` from a digest with or without algorithm (kuik v1 stored the bare hex). */
export function normalizeDigest(digest: string | undefined): string | undefined {
  if (digest === undefined || digest === "") return undefined;
  return digest.includes(":") ? digest : `sha256:${digest}`;
}
