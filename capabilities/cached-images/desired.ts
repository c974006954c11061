/**
 * What the cluster's pods need, as pure functions: the CachedImages and Repositories to exist, and the expiry
 * bookkeeping of CachedImages. The watch glue feeds them the pods (and service accounts) it has cached and applies
 * the differences.
 */
import { parseImageReference } from "../../registry-client/src/reference";
import type { ImageReference } from "../../registry-client/src/types";
import {
  cachedImageName,
  containerAnnotationKey,
  fromProxyImage,
  podContainers,
  repositoryOf,
  type ContainerKind,
  type PodLike,
} from "../shared/names";

/** Options of the desired-state functions. */
export interface DesiredOptions {
  /** Proxy port of rewritten images, to read originals back from images without annotation (default 7439). */
  proxyPort?: number;
}

/** One image a pod uses through kuik. */
export interface PodImage {
  container: string;
  kind: ContainerKind;
  /** The original image, as recorded (verbatim, e.g. `nginx:1.25`). */
  sourceImage: string;
  ref: ImageReference;
  /** Its CachedImage name. */
  name: string;
}

/** A recorded original that could not be used; for the glue to log, never fatal. */
export interface DesiredProblem {
  /** `namespace/name` of the pod. */
  pod: string;
  container: string;
  sourceImage: string;
  message: string;
}

/** A CachedImage that must exist. */
export interface DesiredCachedImage {
  name: string;
  /** `spec.sourceImage`: among the spellings in use, the shortest then alphabetically first (deterministic). */
  sourceImage: string;
  /** `namespace/name` of the pods using it, sorted. */
  usedBy: string[];
}

/** Result of {@link desiredCachedImages}. */
export interface DesiredCachedImages {
  cachedImages: Map<string, DesiredCachedImage>;
  problems: DesiredProblem[];
}

const DEFAULT_PROXY_PORT = 7439;

/** `namespace/name` of an object. */
export function namespacedName(obj: PodLike): string {
  return `${obj.metadata?.namespace ?? ""}/${obj.metadata?.name ?? ""}`;
}

/** Whether a pod is being deleted: it no longer counts as a user of its images. */
export function isTerminating(pod: PodLike): boolean {
  return isSet(pod.metadata?.deletionTimestamp);
}

/**
 * The images a pod uses through kuik: for each container, init container and ephemeral container, the original
 * recorded in its annotation; failing that (ephemeral containers, whose annotation the API server drops, or a
 * removed annotation), the original read back from a `localhost:<port>/…` image. Containers with neither are
 * not using kuik.
 */
export function podImages(
  pod: PodLike,
  options: DesiredOptions = {},
): { images: PodImage[]; problems: DesiredProblem[] } {
  const port = options.proxyPort ?? DEFAULT_PROXY_PORT;
  const annotations = pod.metadata?.annotations ?? {};
  const images: PodImage[] = [];
  const problems: DesiredProblem[] = [];
  for (const { kind, container } of podContainers(pod)) {
    const recorded = annotations[containerAnnotationKey(container.name, kind)];
    const sourceImage = recorded ?? fromProxyImage(container.image ?? "", port);
    if (sourceImage === undefined) continue;
    try {
      const ref = parseImageReference(sourceImage);
      images.push({ container: container.name, kind, sourceImage, ref, name: cachedImageName(ref) });
    } catch (e) {
      problems.push({
        pod: namespacedName(pod),
        container: container.name,
        sourceImage,
        message: (e as Error).message,
      });
    }
  }
  return { images, problems };
}

/** Shortest, then alphabetically first: the same choice whatever the order pods are seen in. */
function preferred(a: string, b: string): string {
  if (a.length !== b.length) return a.length < b.length ? a : b;
  return a < b ? a : b;
}

/**
 * The CachedImages the given pods need, each with the pods using it. Terminating pods are skipped. Two
 * different images whose names collide (sanitising is lossy: `a/b-c:1` and `a/b:c-1`): the image of the first pod
 * in `namespace/name` order keeps the name, the other is reported as a problem.
 */
export function desiredCachedImages(
  pods: Iterable<PodLike>,
  options: DesiredOptions = {},
): DesiredCachedImages {
  const cachedImages = new Map<string, DesiredCachedImage & { canonical: string }>();
  const problems: DesiredProblem[] = [];
  for (const pod of livePodsInOrder(pods)) {
    const found = podImages(pod, options);
    problems.push(...found.problems);
    for (const image of found.images) {
      const entry = cachedImages.get(image.name);
      const podName = namespacedName(pod);
      if (entry === undefined) {
        const { name, sourceImage } = image;
        cachedImages.set(name, { name, sourceImage, canonical: image.ref.canonical, usedBy: [podName] });
      } else if (entry.canonical === image.ref.canonical) {
        entry.sourceImage = preferred(entry.sourceImage, image.sourceImage);
        if (!entry.usedBy.includes(podName)) entry.usedBy.push(podName);
      } else {
        const message = `CachedImage name ${image.name} is already used by ${entry.canonical}`;
        problems.push({ pod: podName, container: image.container, sourceImage: image.sourceImage, message });
      }
    }
  }
  const out = new Map<string, DesiredCachedImage>();
  for (const [name, e] of cachedImages) out.set(name, { name, sourceImage: e.sourceImage, usedBy: e.usedBy });
  return { cachedImages: out, problems };
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Non-terminating pods sorted by `namespace/name`, so results never depend on listing order. */
function livePodsInOrder(pods: Iterable<PodLike>): PodLike[] {
  return [...pods].filter(p => !isTerminating(p)).sort((a, b) => cmp(namespacedName(a), namespacedName(b)));
}

/** A pull secret reference, as in Repository `spec.pullSecrets`. */
export interface PullSecretRef {
  namespace: string;
  name: string;
}

/** The service-account fields kuik reads (a `kind.ServiceAccount` fits). */
export interface ServiceAccountLike {
  readonly metadata?: { readonly name?: string; readonly namespace?: string };
  readonly imagePullSecrets?: readonly { readonly name?: string }[];
}

/** A Repository that must exist, with the pull secrets kuik maintains (`spec.pullSecrets`). */
export interface DesiredRepository {
  /** Repository object name. */
  objectName: string;
  /** `spec.name`, e.g. `docker.io/library/nginx`. */
  name: string;
  /** Label value of its CachedImages. */
  label: string;
  /** Union of the pull secrets of every pod using it and of their service accounts, sorted, deduplicated. */
  pullSecrets: PullSecretRef[];
}

/**
 * The Repositories the given pods need. Pull secrets are merged across all pods and namespaces using a
 * repository (v1 kept only the last pod's, Appendix B #4). The result only describes `spec.name` and
 * `spec.pullSecrets`: the glue server-side-applies those two fields under kuik's field manager, so
 * `pullSecretNames`, `pullSecretsNamespace`, `updateInterval`, `updateFilters` and pull-secret entries added by
 * users are never touched. A repository no pod uses is absent here, and the glue leaves it as it is.
 */
export function desiredRepositories(
  pods: Iterable<PodLike>,
  serviceAccounts: Iterable<ServiceAccountLike>,
  options: DesiredOptions = {},
): Map<string, DesiredRepository> {
  const accounts = new Map<string, ServiceAccountLike>();
  for (const sa of serviceAccounts) accounts.set(namespacedName(sa), sa);
  const secrets = new Map<string, { repo: DesiredRepository; refs: Map<string, PullSecretRef> }>();
  for (const pod of livePodsInOrder(pods)) {
    const podSecrets = pullSecretsOf(pod, accounts);
    for (const image of podImages(pod, options).images) {
      const identity = repositoryOf(image.ref);
      let entry = secrets.get(identity.objectName);
      if (entry === undefined) {
        entry = { repo: { ...identity, pullSecrets: [] }, refs: new Map() };
        secrets.set(identity.objectName, entry);
      }
      // Two names sanitised alike: the first (in pod order) owns the object, as for CachedImages.
      if (entry.repo.name !== identity.name) continue;
      for (const secret of podSecrets) entry.refs.set(`${secret.namespace}/${secret.name}`, secret);
    }
  }
  const out = new Map<string, DesiredRepository>();
  for (const [objectName, { repo, refs }] of secrets) {
    const sorted = [...refs.keys()].sort(cmp).map(key => refs.get(key) as PullSecretRef);
    out.set(objectName, { ...repo, pullSecrets: sorted });
  }
  return out;
}

/** The pod's `imagePullSecrets` and its service account's, all in the pod's namespace. */
function pullSecretsOf(pod: PodLike, accounts: ReadonlyMap<string, ServiceAccountLike>): PullSecretRef[] {
  const namespace = pod.metadata?.namespace ?? "";
  const sa = pod.spec?.serviceAccountName
    ? accounts.get(`${namespace}/${pod.spec.serviceAccountName}`)
    : undefined;
  const names = [...(pod.spec?.imagePullSecrets ?? []), ...(sa?.imagePullSecrets ?? [])].map(
    s => s.name ?? "",
  );
  return names.filter(name => name !== "").map(name => ({ namespace, name }));
}

/**
 * The pull secrets to try for a Repository: its `spec.pullSecrets`, then the user's `pullSecretNames` in
 * `pullSecretsNamespace`, deduplicated. Missing secrets are for the caller to skip.
 */
export function effectivePullSecrets(spec: {
  pullSecrets?: readonly PullSecretRef[];
  pullSecretNames?: readonly string[];
  pullSecretsNamespace?: string;
}): PullSecretRef[] {
  const namespace = spec.pullSecretsNamespace ?? "";
  const legacy = namespace === "" ? [] : (spec.pullSecretNames ?? []).map(name => ({ namespace, name }));
  const all = [...(spec.pullSecrets ?? []), ...legacy];
  return [...new Map(all.map(ref => [`${ref.namespace}/${ref.name}`, ref])).values()];
}

/** The `status.usedBy` of a CachedImage used by `pods` (`namespace/name`). */
export function usedByStatus(pods: readonly string[]): { pods: { namespacedName: string }[]; count: number } {
  const sorted = [...new Set(pods)].sort(cmp);
  return { pods: sorted.map(namespacedName => ({ namespacedName })), count: sorted.length };
}

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
 * `status.usedBy` or an earlier pass: v1 deleted images that had become used again (Appendix B #5, issue #540).
 */
export function shouldDelete(ci: ExpiringImage, liveUsedByCount: number, now: Date): boolean {
  if (isSet(ci.metadata?.deletionTimestamp)) return false;
  if (ci.spec?.retain === true || liveUsedByCount > 0) return false;
  const expiresAt = timeOf(ci.spec?.expiresAt);
  return expiresAt !== undefined && expiresAt <= now.getTime();
}
