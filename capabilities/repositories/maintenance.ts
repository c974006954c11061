// capabilities/repositories/: Repository status and refreshes, registry credentials.
/**
 * Repository maintenance, run with the expiry sweep: `status` (image count, phase, Ready condition) from the
 * CachedImages of each Repository, and the periodic refresh of mutable tags (`spec.updateInterval` +
 * `spec.updateFilters`, kuik v1's docs/mutable-tags.md): every due CachedImage gets the `forceUpdate`
 * annotation, which the caching pass consumes (HEAD the origin, copy only if the digest moved).
 */
import type { Logger } from "pino";
import type { CachedImage, Repository } from "../crd";
import { annotationPath } from "../kube/patch-ops";
import type { Clock, JsonPatchOp, KubePort } from "../kube/ports";
import { readStatus, readyCondition, sameJson, type WireCondition } from "../shared/cached-image-status";
import { compileImageRegex } from "../shared/config";
import { errorMessage } from "../shared/errors";
import { ANNOTATION_FORCE_UPDATE, FORCE_UPDATE_VALUE } from "../shared/labels";
import { repositoryOf } from "../shared/object-names";

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};
const GO_DURATION_RE = /^(?:(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+$/;
const GO_DURATION_PART_RE = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/g;

/** A Go `time.Duration` string (`90s`, `1h30m`) in milliseconds; `undefined` when invalid or not positive. */
export function parseGoDuration(text: string | undefined): number | undefined {
  if (text === undefined || !GO_DURATION_RE.test(text)) return undefined;
  let ms = 0;
  for (const [, value, unit] of text.matchAll(GO_DURATION_PART_RE))
    ms += Number(value) * (UNIT_MS[unit as string] ?? 0);
  return ms > 0 ? ms : undefined;
}

/** The status kuik writes on a Repository. */
export interface RepositoryStatusWire {
  images: number;
  phase: "Ready" | "Pulling" | "ErrImagePull";
  conditions: WireCondition[];
  lastUpdate?: string;
  observedGeneration?: number;
}

/** Repository status from its CachedImages (as kube-image-keeper v1 computes it). */
export function repositoryStatus(
  repo: Repository,
  images: readonly CachedImage[],
  now: Date,
): RepositoryStatusWire {
  const phases = images.map(ci => readStatus(ci).phase);
  const phase = phases.includes("ErrImagePull")
    ? "ErrImagePull"
    : phases.some(p => p === "Pulling" || p === "Synchronizing" || p === undefined)
      ? "Pulling"
      : "Ready";
  const message =
    phase === "ErrImagePull"
      ? "Some images in pull error"
      : phase === "Pulling"
        ? "Some images are being cached"
        : "";
  const previous = (repo.status?.conditions ?? []) as unknown as WireCondition[];
  const generation = repo.metadata?.generation as number | undefined;
  const conditions = readyCondition(previous, phase, message, now, generation).map(c =>
    c.type === "Ready" && c.status === "True" ? { ...c, reason: "UpToDate" } : c,
  );
  const status: RepositoryStatusWire = { images: images.length, phase, conditions };
  const lastUpdate = repo.status?.lastUpdate as unknown as string | undefined;
  if (lastUpdate !== undefined) status.lastUpdate = lastUpdate;
  if (generation !== undefined) status.observedGeneration = generation;
  return status;
}

/** The CachedImages of a Repository to refresh now: `[]` when no interval is set or it has not elapsed. */
export function refreshTargets(
  repo: Repository,
  images: readonly CachedImage[],
  now: Date,
): { due: boolean; names: string[]; problems: string[] } {
  const interval = parseGoDuration(repo.spec?.updateInterval);
  const problems: string[] = [];
  if (repo.spec?.updateInterval !== undefined && interval === undefined) {
    problems.push(`invalid updateInterval ${JSON.stringify(repo.spec.updateInterval)}`);
  }
  const last = Date.parse((repo.status?.lastUpdate as unknown as string | undefined) ?? "");
  if (interval === undefined || (!Number.isNaN(last) && now.getTime() < last + interval)) {
    return { due: false, names: [], problems };
  }
  const filters: RegExp[] = [];
  for (const source of repo.spec?.updateFilters ?? []) {
    try {
      filters.push(compileImageRegex(source));
    } catch (e) {
      problems.push(`invalid updateFilter ${JSON.stringify(source)}: ${(e as Error).message}`);
    }
  }
  const names = images
    .filter(ci => filters.length === 0 || filters.some(re => re.test(ci.spec?.sourceImage ?? "")))
    .map(ci => ci.metadata?.name as string);
  return { due: true, names, problems };
}

/** JSON Patch adding the `forceUpdate` annotation. */
export function forceUpdateOps(ci: CachedImage): JsonPatchOp[] {
  if (ci.metadata?.annotations === undefined) {
    return [
      { op: "add", path: "/metadata/annotations", value: { [ANNOTATION_FORCE_UPDATE]: FORCE_UPDATE_VALUE } },
    ];
  }
  return [{ op: "add", path: annotationPath(ANNOTATION_FORCE_UPDATE), value: FORCE_UPDATE_VALUE }];
}

/** What {@link maintainRepositories} needs. */
export interface RepositoryDeps {
  kube: Pick<KubePort, "patchCachedImage" | "patchRepositoryStatus">;
  clock: Clock;
  log: Logger;
}

/** Refreshes due images and updates every Repository's status (writes only what changed). */
export async function maintainRepositories(
  repositories: Iterable<Repository>,
  cachedImages: Iterable<CachedImage>,
  deps: RepositoryDeps,
): Promise<void> {
  const byRepository = groupByRepository(cachedImages);
  const now = deps.clock.now();
  for (const repo of repositories) {
    const name = repo.metadata?.name as string;
    if (repo.metadata?.deletionTimestamp) continue;
    const images = byRepository.get(name) ?? [];
    try {
      const next = repositoryStatus(repo, images, now);
      const { due, names, problems } = refreshTargets(repo, images, now);
      for (const problem of problems) deps.log.warn({ repository: name }, problem);
      for (const target of names) {
        const ci = images.find(i => i.metadata?.name === target) as CachedImage;
        await deps.kube.patchCachedImage(target, forceUpdateOps(ci));
      }
      if (due) next.lastUpdate = now.toISOString();
      if (!sameJson(pickStatus(repo), next)) await deps.kube.patchRepositoryStatus(name, { ...next });
    } catch (err) {
      deps.log.warn({ repository: name, error: errorMessage(err) }, "repository maintenance failed");
    }
  }
}

function pickStatus(repo: Repository): Record<string, unknown> {
  const { images, phase, conditions, lastUpdate, observedGeneration } = (repo.status ?? {}) as Record<
    string,
    unknown
  >;
  return Object.fromEntries(
    Object.entries({ images, phase, conditions, lastUpdate, observedGeneration }).filter(
      ([, v]) => v !== undefined,
    ),
  );
}

function groupByRepository(cachedImages: Iterable<CachedImage>): Map<string, CachedImage[]> {
  const out = new Map<string, CachedImage[]>();
  for (const ci of cachedImages) {
    if (ci.metadata?.deletionTimestamp) continue;
    try {
      const { objectName } = repositoryOf(ci.spec?.sourceImage ?? "");
      const group = out.get(objectName);
      if (group === undefined) out.set(objectName, [ci]);
      else group.push(ci);
    } catch {
      // invalid sourceImage: reported by the caching pass
    }
  }
  return out;
}
