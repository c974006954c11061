/**
 * The tracking plan, pure: from the managed pods (and their service accounts) and the CachedImages and
 * Repositories as last observed, the writes that make the cluster match — CachedImages to create, `status.usedBy`
 * to update, `spec.expiresAt` to set or clear, Repository pull secrets to apply. Writing nothing when nothing
 * changed is the point: the plan is recomputed after every burst of pod events and at every resync.
 */
import type { CachedImage, Repository } from "../crd";
import { computeExpiry, type ExpiryDecision } from "../expiry/rules";
import { LABEL_REPOSITORY } from "../shared/labels";
import { repositoryOf } from "../shared/object-names";
import { desiredCachedImages, type AdmittedImages, type DesiredProblem } from "../shared/pod-images";
import type { PodLike, PullSecretRef, ServiceAccountLike } from "../shared/pods";
import { desiredRepositories } from "./desired";

/** What {@link planTracking} reads. */
export interface TrackingInput {
  pods: Iterable<PodLike>;
  serviceAccounts: Iterable<ServiceAccountLike>;
  /** CachedImages as last observed, by name. */
  cachedImages: ReadonlyMap<string, CachedImage>;
  /** Repositories as last observed, by name. */
  repositories: ReadonlyMap<string, Repository>;
  /** Key of the last Repository apply made by this process, by object name ({@link repositoryKey}). */
  appliedRepositories: ReadonlyMap<string, string>;
  now: Date;
  expiryDelayMs: number;
  /** The admission rules, re-applied to every pod (shared/pod-images.ts). */
  admitted: AdmittedImages;
}

/** A server-side apply of a CachedImage (creation, or adding the repository label). */
export interface CachedImageApply {
  name: string;
  sourceImage: string;
  labels: Record<string, string>;
}

/** A server-side apply of a Repository; `pullSecrets` absent: only make sure it exists (a create, see kube/ports.ts). */
export interface RepositoryApply {
  objectName: string;
  name: string;
  pullSecrets?: PullSecretRef[];
  key: string;
}

/** The writes of one tracking pass. */
export interface TrackingPlan {
  applyCachedImages: CachedImageApply[];
  usedBy: { name: string; pods: string[] }[];
  expiry: { name: string; decision: Exclude<ExpiryDecision, { action: "keep" }>; current?: string }[];
  applyRepositories: RepositoryApply[];
  problems: DesiredProblem[];
}

/** Identity of a Repository apply: equal keys mean the apply would change nothing. */
export function repositoryKey(name: string, pullSecrets?: readonly PullSecretRef[]): string {
  return JSON.stringify([name, pullSecrets?.map(s => `${s.namespace}/${s.name}`) ?? null]);
}

/** Computes the tracking writes; see the file comment. */
export function planTracking(input: TrackingInput): TrackingPlan {
  const pods = [...input.pods];
  const desired = desiredCachedImages(pods, { admitted: input.admitted });
  const plan: TrackingPlan = {
    applyCachedImages: [],
    usedBy: [],
    expiry: [],
    applyRepositories: [],
    problems: [...desired.problems],
  };
  for (const image of desired.cachedImages.values()) {
    const observed = input.cachedImages.get(image.name);
    if (observed === undefined) plan.applyCachedImages.push(applyOf(image.name, image.sourceImage));
  }
  for (const [name, ci] of input.cachedImages) {
    if (ci.metadata?.deletionTimestamp) continue;
    const users = desired.cachedImages.get(name)?.usedBy ?? [];
    const fix = labelFix(name, ci);
    if (fix !== undefined) plan.applyCachedImages.push(fix);
    if (!sameUsers(ci, users)) plan.usedBy.push({ name, pods: users });
    const decision = computeExpiry(ci, users.length, input.now, input.expiryDelayMs);
    if (decision.action !== "keep") {
      const current = ci.spec?.expiresAt as unknown as string | undefined;
      plan.expiry.push(current === undefined ? { name, decision } : { name, decision, current });
    }
  }
  plan.applyRepositories = planRepositories(input, pods);
  return plan;
}

function applyOf(name: string, sourceImage: string): CachedImageApply {
  return { name, sourceImage, labels: { [LABEL_REPOSITORY]: repositoryOf(sourceImage).label } };
}

/** A CachedImage without the right repository label (made by hand, or by an old kuik) gets it. */
function labelFix(name: string, ci: CachedImage): CachedImageApply | undefined {
  const sourceImage = ci.spec?.sourceImage;
  if (sourceImage === undefined) return undefined;
  try {
    const apply = applyOf(name, sourceImage);
    const labels = (ci.metadata?.labels as Record<string, string> | undefined) ?? {};
    return labels[LABEL_REPOSITORY] === apply.labels[LABEL_REPOSITORY] ? undefined : apply;
  } catch {
    return undefined; // an invalid sourceImage is reported by the caching pass
  }
}

function sameUsers(ci: CachedImage, users: readonly string[]): boolean {
  const usedBy = ci.status?.usedBy;
  const current = (usedBy?.pods ?? []).map(p => p.namespacedName).sort();
  return (
    usedBy?.count === users.length &&
    current.length === users.length &&
    current.every((p, i) => p === users[i])
  );
}

/**
 * Repositories: the pull secrets of the pods using each one (applied when they changed since this process last
 * applied them), and a bare `spec.name` for the repository of any CachedImage whose Repository does not exist.
 * A Repository no pod uses is never re-applied, so the entries kuik added stay (the CRD's promise).
 */
function planRepositories(input: TrackingInput, pods: PodLike[]): RepositoryApply[] {
  const out: RepositoryApply[] = [];
  const desired = desiredRepositories(pods, input.serviceAccounts, { admitted: input.admitted });
  for (const repo of desired.values()) {
    const key = repositoryKey(repo.name, repo.pullSecrets);
    if (input.appliedRepositories.get(repo.objectName) === key) continue;
    out.push({ objectName: repo.objectName, name: repo.name, pullSecrets: repo.pullSecrets, key });
  }
  const ensured = new Set<string>();
  for (const ci of input.cachedImages.values()) {
    let identity;
    try {
      identity = repositoryOf(ci.spec?.sourceImage ?? "");
    } catch {
      continue;
    }
    const { objectName, name } = identity;
    if (desired.has(objectName) || input.repositories.has(objectName) || ensured.has(objectName)) continue;
    const key = repositoryKey(name);
    ensured.add(objectName);
    if (input.appliedRepositories.get(objectName) !== key) out.push({ objectName, name, key });
  }
  return out;
}
