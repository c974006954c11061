/**
 * The images pods use through kuik, as pure functions: each pod's images read back from its original-image
 * annotations (or its `localhost:<port>/…` images), and the CachedImages a set of pods needs with their users.
 * Tracking writes them, the expiry sweep and the finalizer recount users with them from a fresh pod list.
 */
import { parseImageReference } from "../../registry-client/src/reference";
import type { ImageReference } from "../../registry-client/src/types";
import { cachedImageName } from "./object-names";
import { containerAnnotationKey, podContainers, type ContainerKind, type PodLike } from "./pods";
import { fromProxyImage } from "./proxy-image";

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
  const deletion = pod.metadata?.deletionTimestamp;
  return deletion !== undefined && deletion !== null;
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

/** String order (`<`), for deterministic sorts. */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Non-terminating pods sorted by `namespace/name`, so results never depend on listing order. */
export function livePodsInOrder(pods: Iterable<PodLike>): PodLike[] {
  return [...pods]
    .filter(p => !isTerminating(p))
    .sort((a, b) => compareStrings(namespacedName(a), namespacedName(b)));
}
