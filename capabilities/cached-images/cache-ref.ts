/**
 * Where an image lives in kuik's cache registry: `<cache endpoint>/<origin registry, ':' → '-'>/<repository>`,
 * with the image's tag and digest (kuik v1's layout, which the proxy reads): `nginx:1.25` →
 * `<endpoint>/docker.io/library/nginx:1.25`, `reg.example:5000/app@sha256:…` →
 * `<endpoint>/reg.example-5000/app@sha256:…`. A digest-pinned image is stored under its digest, and under its
 * tag too when it has one.
 */
import { cacheRepositoryOf } from "../../registry-client/src/proxy-path";
import { parseImageReference } from "../../registry-client/src/reference";
import type { ImageReference } from "../../registry-client/src/types";
import { FINALIZER_CACHED_IMAGE } from "../shared/labels";
import type { CachedImage } from "../crd";
import type { JsonPatchOp } from "./ports";

/** The cache-registry reference of an origin image. */
export function cacheReference(source: ImageReference, endpoint: string): ImageReference {
  const registry = endpoint.toLowerCase();
  const repository = cacheRepositoryOf(source.registry, source.repository);
  const name = `${registry}/${repository}`;
  const ref: ImageReference = { registry, repository, name, canonical: name };
  if (source.tag !== undefined) ref.tag = source.tag;
  if (source.digest !== undefined) ref.digest = source.digest;
  ref.canonical = name + (ref.tag ? `:${ref.tag}` : "") + (ref.digest ? `@${ref.digest}` : "");
  return ref;
}

/** The parsed `spec.sourceImage` of a CachedImage, or the parse error's message. */
export function sourceReference(ci: CachedImage): ImageReference | { error: string } {
  try {
    return parseImageReference(ci.spec?.sourceImage ?? "");
  } catch (e) {
    return { error: (e as Error).message };
  }
}

/** Whether kuik's finalizer is on the object. */
export function hasFinalizer(ci: CachedImage): boolean {
  return ((ci.metadata?.finalizers as string[] | undefined) ?? []).includes(FINALIZER_CACHED_IMAGE);
}

/**
 * JSON Patch adding kuik's finalizer, guarded by a `test` so a concurrent change of the finalizer list fails
 * (422) instead of being overwritten (Pepr's own finalizer patch has no such guard, pepr-notes B5).
 */
export function addFinalizerOps(ci: CachedImage): JsonPatchOp[] {
  const finalizers = (ci.metadata?.finalizers as string[] | undefined) ?? [];
  if (finalizers.length === 0) {
    return [
      { op: "test", path: "/metadata/resourceVersion", value: ci.metadata?.resourceVersion },
      { op: "add", path: "/metadata/finalizers", value: [FINALIZER_CACHED_IMAGE] },
    ];
  }
  return [
    { op: "test", path: "/metadata/finalizers", value: finalizers },
    { op: "add", path: "/metadata/finalizers/-", value: FINALIZER_CACHED_IMAGE },
  ];
}

/** JSON Patch removing kuik's finalizer at its current index, guarded by a `test` of that index. */
export function removeFinalizerOps(
  object: { metadata?: { finalizers?: unknown } },
  finalizer: string = FINALIZER_CACHED_IMAGE,
): JsonPatchOp[] {
  const index = ((object.metadata?.finalizers as string[] | undefined) ?? []).indexOf(finalizer);
  if (index < 0) return [];
  const path = `/metadata/finalizers/${index}`;
  return [
    { op: "test", path, value: finalizer },
    { op: "remove", path },
  ];
}

/** `/metadata/annotations/<key>` with the key escaped for a JSON Pointer. */
export function annotationPath(key: string): string {
  return `/metadata/annotations/${key.replace(/~/g, "~0").replace(/\//g, "~1")}`;
}
