/**
 * The admission glue: turns a Pod AdmissionRequest into {@link rewritePod}'s input and applies its result through
 * the PeprMutateRequest API. Fail-open: whatever goes wrong, the pod is admitted unchanged (as with kuik v1's
 * `failurePolicy: Ignore`), never denied and never half-rewritten.
 */
import type { Logger } from "pino";
import { CONTAINER_LIST_FIELD, type ContainerLike, type PodLike } from "../shared/pods";
import { rewritePod, type RewritePolicy, type RewriteResult, type SkipReason } from "./rewrite";

/** The part of Pepr's `PeprMutateRequest<Pod>` the glue uses (the real class fits). */
export interface PodMutateRequest {
  Raw: {
    metadata?: { name?: string; generateName?: string; namespace?: string };
    spec?: Partial<
      Record<(typeof CONTAINER_LIST_FIELD)[keyof typeof CONTAINER_LIST_FIELD], ContainerLike[]>
    > & {
      nodeName?: string;
    };
  };
  readonly Request: { readonly operation: string; readonly namespace?: string; readonly name: string };
  readonly OldResource?: unknown;
  SetLabel(key: string, value: string): unknown;
  SetAnnotation(key: string, value: string): unknown;
  RemoveAnnotation(key: string): unknown;
}

/**
 * The proxy gate as admission sees it (capabilities/proxy-gate/gate.ts, wired by capabilities/index.ts): whether a
 * Pod on `node` (its `spec.nodeName`, usually not set yet) may be rewritten now, answered from memory.
 */
export interface AdmissionGate {
  verdict(
    node?: string,
  ): { rewrite: true; reason: string } | { rewrite: false; reason: string; detail: string };
}

/** Skip reasons worth a warning: the image is broken or cannot go through the proxy (others are by design). */
const WARN_REASONS: ReadonlySet<SkipReason> = new Set<SkipReason>([
  "invalid-reference",
  "loopback-registry",
  "ambiguous-registry",
  "unsupported-registry",
  "name-too-long",
]);

/** What {@link mutatePod} did, for tests and the log line. `held`: a rewrite was due but the gate is closed. */
export type MutateOutcome = "rewritten" | "unchanged" | "skipped" | "held" | "failed";

/**
 * Rewrites an admitted pod's images in place (`req.Raw`), records originals and labels.
 *
 * - `metadata.namespace` is filled from the request when empty (pods created by a controller or `kubectl create`
 *   without `-n` arrive without it), so namespace rules apply;
 * - on UPDATE (including `pods/ephemeralcontainers`) the old pod is passed so unchanged containers are left alone;
 * - one info line carries the per-container report (object first); unparsable or refused images are warnings;
 * - when an image would be rewritten but the `gate` says the proxy is not serving (on the Pod's node when it is
 *   known), the Pod is admitted untouched, with one info line saying why.
 */
export function mutatePod(
  req: PodMutateRequest,
  policy: RewritePolicy,
  log: Logger,
  gate?: AdmissionGate,
): MutateOutcome {
  let result: RewriteResult;
  try {
    const operation = req.Request.operation;
    if (operation !== "CREATE" && operation !== "UPDATE") return "unchanged";
    const raw = req.Raw;
    if (!raw.metadata?.namespace && req.Request.namespace) {
      raw.metadata = { ...raw.metadata, namespace: req.Request.namespace };
    }
    const oldPod = operation === "UPDATE" ? (req.OldResource as PodLike | undefined) : undefined;
    result = rewritePod(raw as PodLike, operation, oldPod, policy);
    const verdict = result.images.length > 0 ? gate?.verdict(raw.spec?.nodeName) : undefined;
    if (verdict !== undefined && !verdict.rewrite) {
      const { reason, detail } = verdict;
      log.info(
        { pod: podName(req), reason, detail },
        "proxy not serving: pod admitted with its original images",
      );
      return "held";
    }
  } catch (err) {
    log.error({ err, pod: podName(req) }, "image rewrite failed; pod admitted unchanged");
    return "failed";
  }
  return applyResult(req, result, log);
}

/** Applies a computed result; only plain assignments, after every decision was taken. */
function applyResult(req: PodMutateRequest, result: RewriteResult, log: Logger): MutateOutcome {
  const pod = podName(req);
  if (result.skippedBecause !== undefined) {
    log.debug({ pod, reason: result.skippedBecause }, "pod skipped");
    return "skipped";
  }
  for (const change of result.images) {
    const container = req.Raw.spec?.[CONTAINER_LIST_FIELD[change.kind]]?.[change.index];
    if (container !== undefined) (container as { image?: string }).image = change.image;
  }
  for (const [key, value] of Object.entries(result.labels)) req.SetLabel(key, value);
  for (const [key, value] of Object.entries(result.annotations)) req.SetAnnotation(key, value);
  for (const key of result.removeAnnotations) req.RemoveAnnotation(key);
  const refused = result.report.filter(r => r.skippedBecause && WARN_REASONS.has(r.skippedBecause));
  if (refused.length > 0) log.warn({ pod, containers: refused }, "images not rewritten");
  log.info({ pod, containers: result.report, rewritten: result.images.length }, "pod images processed");
  return result.images.length > 0 ? "rewritten" : "unchanged";
}

function podName(req: PodMutateRequest): string {
  const meta = req.Raw.metadata;
  const name = meta?.name || req.Request.name || `${meta?.generateName ?? ""}*`;
  return `${meta?.namespace ?? req.Request.namespace ?? ""}/${name}`;
}
