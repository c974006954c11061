/**
 * The images pods use through kuik, as pure functions: each pod's images read back from its `localhost:<port>/…`
 * images, kept only where kuik's admission rules would have written them (never from the original-image
 * annotations, which whoever creates the pod can set), and the CachedImages a set of pods needs with their users.
 * Tracking writes them, the expiry sweep and the finalizer recount users with them from a fresh pod list.
 */
import { parseImageReference } from "../../registry-client/src/reference";
import type { ImageReference } from "../../registry-client/src/types";
import { cachedImageName } from "./object-names";
import { podContainers, type ContainerKind, type PodLike } from "./pods";

/** A container's image as kuik's admission writes it, and the original it stands for. */
export interface AdmittedImage {
  /** The `localhost:<port>/…` image. */
  image: string;
  /** The original, decoded from {@link image} (never read from an annotation). */
  original: string;
}

/**
 * kuik's admission rules as the watcher re-applies them (image-rewriter/recheck.ts `admittedImages`): for a pod,
 * the containers, by `kind/name`, whose proxy image admission would write, and their originals. Everything the
 * watcher tracks, counts or keeps goes through it: a pod's labels and annotations are the user's, not kuik's.
 */
export type AdmittedImages = (pod: PodLike) => ReadonlyMap<string, AdmittedImage>;

/** Options of the desired-state functions. */
export interface DesiredOptions {
  /** The admission rules (see {@link AdmittedImages}). */
  admitted: AdmittedImages;
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
 * The images a pod uses through kuik: each container, init container and ephemeral container whose image is the
 * `localhost:<port>/…` image kuik's admission rules give its original (`options.admitted`), with that original.
 * Other containers, and whole pods admission skips (opt-out label, ignored namespace), are not using kuik,
 * whatever labels and annotations they carry (docs/security.md "What the watcher trusts").
 */
export function podImages(
  pod: PodLike,
  options: DesiredOptions,
): { images: PodImage[]; problems: DesiredProblem[] } {
  const admitted = options.admitted(pod);
  const images: PodImage[] = [];
  const problems: DesiredProblem[] = [];
  for (const { kind, container } of podContainers(pod)) {
    const entry = admitted.get(`${kind}/${container.name}`);
    if (entry === undefined || entry.image !== container.image) continue;
    const sourceImage = entry.original;
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
export function desiredCachedImages(pods: Iterable<PodLike>, options: DesiredOptions): DesiredCachedImages {
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
