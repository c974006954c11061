/**
 * Writes a {@link TrackingPlan}: each write on its own, so one failure does not stop the others (the tracker
 * schedules another flush when any failed). The observed view is updated optimistically after each successful
 * write, so the next flush does not repeat it before the watch event arrives.
 */
import type { Logger } from "pino";
import type { CachedImage } from "../crd";
import { expiryOps } from "../expiry/rules";
import type { KubePort } from "../kube/ports";
import { errorMessage } from "../shared/errors";
import { usedByStatus } from "./desired";
import type { TrackingPlan } from "./plan";

/** The state {@link writePlan} reads and updates. */
export interface WriteContext {
  kube: KubePort;
  log: Logger;
  /** The observed CachedImages, updated after each successful write. */
  cachedImages: {
    readonly map: ReadonlyMap<string, CachedImage>;
    update(key: string, value: CachedImage): void;
  };
  applied: Map<string, string>;
}

/** Performs the plan's writes; resolves with the number of failed writes. */
export async function writePlan(plan: TrackingPlan, ctx: WriteContext): Promise<number> {
  const { kube, log } = ctx;
  let failures = 0;
  const attempt = async (what: string, name: string, write: () => Promise<void>): Promise<void> => {
    try {
      await write();
    } catch (err) {
      failures++;
      log.warn({ name, error: errorMessage(err) }, `tracking: ${what} failed`);
    }
  };
  for (const repo of plan.applyRepositories) {
    await attempt("repository apply", repo.objectName, async () => {
      if (repo.pullSecrets === undefined) await kube.ensureRepository(repo.objectName, repo.name);
      else await kube.applyRepository(repo.objectName, repo.name, repo.pullSecrets);
      ctx.applied.set(repo.objectName, repo.key);
    });
  }
  for (const ci of plan.applyCachedImages) {
    await attempt("cachedimage apply", ci.name, () =>
      kube.applyCachedImage(ci.name, ci.sourceImage, ci.labels),
    );
  }
  for (const { name, pods } of plan.usedBy) {
    await attempt("usedBy update", name, async () => {
      const usedBy = usedByStatus(pods);
      await kube.patchCachedImageStatus(name, { usedBy });
      const ci = ctx.cachedImages.map.get(name);
      if (ci !== undefined)
        ctx.cachedImages.update(name, { ...ci, status: { ...ci.status, usedBy } } as CachedImage);
    });
  }
  for (const entry of plan.expiry) {
    await attempt("expiry update", entry.name, async () => {
      await kube.patchCachedImage(entry.name, expiryOps(entry));
      const ci = ctx.cachedImages.map.get(entry.name);
      if (ci === undefined) return;
      const spec = { ...ci.spec } as Record<string, unknown>;
      if (entry.decision.action === "set") spec.expiresAt = entry.decision.expiresAt;
      else delete spec.expiresAt;
      ctx.cachedImages.update(entry.name, { ...ci, spec } as unknown as CachedImage);
    });
  }
  if (plan.applyCachedImages.length + plan.usedBy.length + plan.expiry.length > 0) {
    log.info(
      { created: plan.applyCachedImages.length, usedBy: plan.usedBy.length, expiry: plan.expiry.length },
      "tracking updated",
    );
  }
  return failures;
}
