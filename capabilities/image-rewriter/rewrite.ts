/**
 * The pod image rewrite, as a pure synchronous function (no I/O): the admission glue turns its
 * {@link RewriteResult} into a patch.
 *
 * Whole pod left untouched (no label, no annotation): opt-out label
 * `kube-image-keeper.enix.io/image-caching-policy=ignore`, or an ignored namespace (kube-system, pepr-system,
 * kuik's, configured ones). v1 left these to webhook selectors; Pepr has none, so they are checked here.
 * Other pods get `kuik.enix.io/managed=true` and `kuik.enix.io/rewrite-images` (`true` on CREATE; on UPDATE
 * unchanged, `false` if absent: pods that predate kuik are never rewritten). Then, per container (containers,
 * init containers, ephemeral containers), in order:
 * 1. UPDATE of a pod not created through kuik → `not-managed`.
 * 2. UPDATE that did not change this container's image → `unchanged-on-update`: an UPDATE can only change
 *    `image` fields, and rewriting an unchanged image (after a config change, say) would restart it. UPDATE that
 *    put a rewritten image back to its original → `rescued`: kuik's rescue (capabilities/proxy-gate/rescue.ts) did
 *    it because the node's proxy was not serving, and rewriting it again would undo the rescue.
 * 3. Already `localhost:<our port>/…` → kept, original recorded if missing (re-admission is idempotent).
 *    `localhost:<other port>/…` is a genuine node-local registry, not ours (fixes docs/v1-differences.md B7), see 8.
 * 4. `imagePullPolicy: Never` → `pull-policy-never` (the image must be on the node under its own name).
 * 5. Not an image reference → `invalid-reference` (reported, never rewritten).
 * 6. Pulled `Always` while `ignorePullPolicyAlways` (default true) → `pull-policy-always`. The API server
 *    defaults `imagePullPolicy` before admission (`Always` for `:latest`/untagged, else `IfNotPresent`), so
 *    `nginx` and `nginx:latest` arrive as `Always`: whoever wrote them asked for the newest image, which a
 *    cache would freeze, so they stay on their origin. To cache them, write `imagePullPolicy: IfNotPresent`
 *    (`:latest` + `IfNotPresent` is rewritten) or turn the option off. An empty policy (tests only) is
 *    defaulted the same way, from the parsed tag (v1 looked for `:` in the raw string). Digest-pinned images
 *    are immutable: rewritten even when `Always`.
 * 7. Matches an ignore regex → `ignored-image`; accept regexes set and none matches → `not-accepted`. Regexes
 *    are unanchored and tried on the image as written (`nginx`) and normalised
 *    (`docker.io/library/nginx:latest`); either match counts (v1 tried the former only, so its README's
 *    `^docker\.io/` never matched `nginx`).
 * 8. Registries the proxy could not read back → `loopback-registry`, `ambiguous-registry`,
 *    `unsupported-registry`, `name-too-long` (`toProxyImage` in shared/proxy-image.ts).
 * Otherwise the image becomes `localhost:<port>/<image>` (digests included; v1 skipped them) and the original is
 * recorded in the container's annotation. Skipped containers lose a stale annotation (kept for rules 1–2).
 * Ephemeral containers come through `pods/ephemeralcontainers`, where the API server drops metadata changes:
 * their annotation does not stick, and shared/pod-images.ts reads their original back from the rewritten image.
 */
import { parseImageReference } from "../../registry-client/src/reference";
import type { ImageReference } from "../../registry-client/src/types";
import {
  ANNOTATION_REWRITE_IMAGES,
  IMAGE_CACHING_POLICY_IGNORE,
  LABEL_IMAGE_CACHING_POLICY,
  LABEL_MANAGED,
  MANAGED_VALUE,
} from "../shared/labels";
import {
  containerAnnotationKey,
  podContainers,
  type ContainerKind,
  type PodContainer,
  type PodLike,
} from "../shared/pods";
import { fromProxyImage, proxyPrefix, toProxyImage, type ProxyImageProblem } from "../shared/proxy-image";
import type { RewritePolicy } from "./policy";

export { compilePolicy, type RewritePolicy, type RewritePolicyConfig } from "./policy";

/** Why a whole pod is left untouched. */
export type PodSkipReason = "opt-out-label" | "ignored-namespace";

/** Why a container's image is not rewritten (see the rules at the top of this file). */
export type SkipReason =
  | PodSkipReason
  | "not-managed"
  | "unchanged-on-update"
  | "rescued"
  | "pull-policy-never"
  | "pull-policy-always"
  | "invalid-reference"
  | "ignored-image"
  | "not-accepted"
  | ProxyImageProblem;

/** What happened to one container. */
export interface ContainerReport {
  container: string;
  kind: ContainerKind;
  /** The image as the user wrote it (for an already rewritten image: the recorded original). */
  original: string;
  /** The proxy image the container uses after admission, when it uses one. */
  rewritten?: string;
  skippedBecause?: SkipReason;
}

/** A container whose image must change. */
export interface ImageChange {
  kind: ContainerKind;
  /** Index in the pod-spec list of its kind (`CONTAINER_LIST_FIELD` in shared/pods.ts). */
  index: number;
  container: string;
  image: string;
}

/** The mutation to apply to an admitted pod. Applying it twice changes nothing. */
export interface RewriteResult {
  /** Set when the whole pod is left untouched (then every other field is empty but `report`). */
  skippedBecause?: PodSkipReason;
  images: ImageChange[];
  /** Labels to set. */
  labels: Record<string, string>;
  /** Annotations to set. */
  annotations: Record<string, string>;
  /** Annotations to remove (stale original-image records). */
  removeAnnotations: string[];
  /** One entry per container, in pod order: containers, init containers, ephemeral containers. */
  report: ContainerReport[];
}

/** What {@link decideContainer} needs besides the container. */
interface Context {
  policy: RewritePolicy;
  /** Whether this admission may rewrite images at all. */
  rewrite: boolean;
  annotations: Readonly<Record<string, string>>;
  /** UPDATE only: image of each container of the old pod, by `kind/name`. */
  oldImages: ReadonlyMap<string, string> | undefined;
}

/** A container's decision; `annotation`: a value to record, `null` to remove, `undefined` to leave. */
interface Outcome {
  report: ContainerReport;
  image?: string;
  annotation?: string | null;
}

/**
 * Computes the mutation of a pod at admission.
 *
 * @param pod - the admitted pod; its `metadata.namespace` must be set (fill it from the AdmissionRequest).
 * @param oldPod - on UPDATE, the pod before the update (`req.OldResource`); without it every container is
 *   re-evaluated, as v1 did.
 */
export function rewritePod(
  pod: PodLike,
  operation: "CREATE" | "UPDATE",
  oldPod: PodLike | undefined,
  policy: RewritePolicy,
): RewriteResult {
  const containers = podContainers(pod);
  const podSkip = podSkipReason(pod, policy);
  if (podSkip !== undefined) {
    const report = containers.map(c => ({ ...baseReport(c), skippedBecause: podSkip }));
    return {
      skippedBecause: podSkip,
      images: [],
      labels: {},
      annotations: {},
      removeAnnotations: [],
      report,
    };
  }
  const annotations = pod.metadata?.annotations ?? {};
  const rewrite = operation === "CREATE" || annotations[ANNOTATION_REWRITE_IMAGES] === "true";
  const oldImages = operation === "UPDATE" && oldPod !== undefined ? imagesByContainer(oldPod) : undefined;
  const context: Context = { policy, rewrite, annotations, oldImages };
  const result: RewriteResult = {
    images: [],
    labels: { [LABEL_MANAGED]: MANAGED_VALUE },
    annotations: { [ANNOTATION_REWRITE_IMAGES]: String(rewrite) },
    removeAnnotations: [],
    report: [],
  };
  for (const c of containers) {
    const outcome = decideContainer(context, c);
    const key = containerAnnotationKey(c.container.name, c.kind);
    result.report.push(outcome.report);
    if (outcome.image !== undefined && outcome.image !== c.container.image) {
      result.images.push({ kind: c.kind, index: c.index, container: c.container.name, image: outcome.image });
    }
    if (outcome.annotation === null) result.removeAnnotations.push(key);
    else if (outcome.annotation !== undefined && annotations[key] !== outcome.annotation) {
      result.annotations[key] = outcome.annotation;
    }
  }
  return result;
}

function podSkipReason(pod: PodLike, policy: RewritePolicy): PodSkipReason | undefined {
  const labels = pod.metadata?.labels ?? {};
  if (labels[LABEL_IMAGE_CACHING_POLICY] === IMAGE_CACHING_POLICY_IGNORE) return "opt-out-label";
  const namespace = pod.metadata?.namespace;
  if (namespace !== undefined && policy.ignoredNamespaces.has(namespace)) return "ignored-namespace";
  return undefined;
}

function baseReport(c: PodContainer): ContainerReport {
  return { container: c.container.name, kind: c.kind, original: c.container.image ?? "" };
}

function imagesByContainer(pod: PodLike): Map<string, string> {
  return new Map(podContainers(pod).map(c => [`${c.kind}/${c.container.name}`, c.container.image ?? ""]));
}

/** Applies the per-container rules, in order. */
function decideContainer(context: Context, c: PodContainer): Outcome {
  const { policy, annotations } = context;
  const image = c.container.image ?? "";
  const recorded = annotations[containerAnnotationKey(c.container.name, c.kind)];
  const base = baseReport(c);
  if (!context.rewrite) return { report: { ...base, skippedBecause: "not-managed" } };
  if (context.oldImages?.get(`${c.kind}/${c.container.name}`) === image) {
    const ours = image.startsWith(proxyPrefix(policy.proxyPort));
    const report: ContainerReport = { ...base, skippedBecause: "unchanged-on-update" };
    if (ours) {
      report.original = recorded ?? fromProxyImage(image, policy.proxyPort) ?? image;
      report.rewritten = image;
    }
    return { report };
  }
  const oldImage = context.oldImages?.get(`${c.kind}/${c.container.name}`);
  if (oldImage !== undefined && fromProxyImage(oldImage, policy.proxyPort) === image) {
    return { report: { ...base, skippedBecause: "rescued" } };
  }
  if (image.startsWith(proxyPrefix(policy.proxyPort))) return keepProxyImage(policy, image, recorded, base);
  const skip = (reason: SkipReason): Outcome => ({
    report: { ...base, skippedBecause: reason },
    annotation: recorded === undefined ? undefined : null,
  });
  if (c.container.imagePullPolicy === "Never") return skip("pull-policy-never");
  const ref = tryParse(image);
  if (ref === undefined) return skip("invalid-reference");
  const reason = policySkipReason(policy, image, ref, c.container.imagePullPolicy);
  if (reason !== undefined) return skip(reason);
  const proxied = toProxyImage(image, ref, policy.proxyPort, {
    allowLoopback: policy.rewriteLoopbackRegistries,
  });
  if ("problem" in proxied) return skip(proxied.problem);
  return { report: { ...base, rewritten: proxied.image }, image: proxied.image, annotation: image };
}

/** An image already in our proxy form: kept, with its original recorded if the record is missing or stale. */
function keepProxyImage(
  policy: RewritePolicy,
  image: string,
  recorded: string | undefined,
  base: ContainerReport,
): Outcome {
  if (recorded !== undefined && proxyFormOf(recorded, policy) === image) {
    return { report: { ...base, original: recorded, rewritten: image } };
  }
  const decoded = fromProxyImage(image, policy.proxyPort);
  if (decoded === undefined || tryParse(decoded) === undefined) {
    return { report: { ...base, skippedBecause: "invalid-reference" } };
  }
  return { report: { ...base, original: decoded, rewritten: image }, annotation: decoded };
}

function proxyFormOf(original: string, policy: RewritePolicy): string | undefined {
  const ref = tryParse(original);
  if (ref === undefined) return undefined;
  const proxied = toProxyImage(original, ref, policy.proxyPort, {
    allowLoopback: policy.rewriteLoopbackRegistries,
  });
  return "image" in proxied ? proxied.image : undefined;
}

function tryParse(image: string): ImageReference | undefined {
  try {
    return parseImageReference(image);
  } catch {
    return undefined;
  }
}

/** Rules 6 and 7: pull policy, then ignore/accept regexes on both spellings of the image. */
function policySkipReason(
  policy: RewritePolicy,
  image: string,
  ref: ImageReference,
  pullPolicy: string | undefined,
): SkipReason | undefined {
  // The API server's own defaulting, for the (test-only) case where it has not run.
  const effective = pullPolicy || (ref.tag === "latest" ? "Always" : "IfNotPresent");
  if (effective === "Always" && policy.ignorePullPolicyAlways && ref.digest === undefined) {
    return "pull-policy-always";
  }
  const matches = (re: RegExp): boolean => re.test(image) || re.test(ref.canonical);
  if (policy.ignoredImages.some(matches)) return "ignored-image";
  if (policy.acceptedImages.length > 0 && !policy.acceptedImages.some(matches)) return "not-accepted";
  return undefined;
}
