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
import type { CachedImage } from "../crd";

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
